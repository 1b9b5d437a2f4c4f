"""Emulators: the processes that stand in for a board's CPU (``qemu``: one QEMU run)."""
