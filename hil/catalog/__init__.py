"""The built-in catalog shipped in the package: board files, linker templates, example apps.

In the source repository ``boards/``, ``linker/`` and ``firmware_examples/`` at the top level
are the source; the links here put them inside the package, so the wheel carries them and
an installed hil finds them beside its own code (never in a source checkout).
"""

from __future__ import annotations

from pathlib import Path

CATALOG_DIR = Path(__file__).resolve().parent
BOARDS_DIR = CATALOG_DIR / "boards"
LINKER_DIR = CATALOG_DIR / "linker"
EXAMPLES_DIR = CATALOG_DIR / "examples"
