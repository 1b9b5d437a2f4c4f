"""``python -m hil``: the same as the ``hil`` command."""

from hil.cli import console_main

console_main()
