"""hil: a hardware-in-the-loop firmware pipeline."""

__version__ = "0.1.0"
