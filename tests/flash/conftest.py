"""Fixtures for the flashing tests: images, a rack of simulated boards, the real shell image."""

from __future__ import annotations

import random
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from intelhex import IntelHex

from hil.flash.sim.probe import forget_chips
from hil.flash.sim.registry import clear_hints

F4_FLASH = 0x08000000


@dataclass(frozen=True)
class Images:
    """Synthetic images spanning several sectors of nucleo-f4 (16K x4, 64K, 128K x3)."""

    base: Path  # 0x08000000..+200K: sectors 0-4 and part of 5
    same: Path  # identical contents, another file
    one_function: Path  # base with 256 bytes changed inside sector 2 (0x08008000..)
    changed_at: int


def make_hex(path: Path, segments: list[tuple[int, bytes]]) -> Path:
    ih = IntelHex()
    for address, data in segments:
        ih.frombytes(data, offset=address)
    ih.write_hex_file(str(path))
    return path


@pytest.fixture
def images(tmp_path: Path) -> Images:
    rng = random.Random(5)
    body = bytearray(rng.getrandbits(8) for _ in range(200 * 1024))
    body[0:8] = (0x20020000).to_bytes(4, "little") + (0x08000101).to_bytes(4, "little")
    base = make_hex(tmp_path / "base.hex", [(F4_FLASH, bytes(body))])
    same = make_hex(tmp_path / "same.hex", [(F4_FLASH, bytes(body))])
    changed_at = F4_FLASH + 0x8000 + 0x400
    body2 = bytearray(body)
    off = changed_at - F4_FLASH
    body2[off:off + 256] = bytes(b ^ 0x5A for b in body2[off:off + 256])
    one = make_hex(tmp_path / "one_function.hex", [(F4_FLASH, bytes(body2))])
    return Images(base, same, one, changed_at)


@pytest.fixture
def rack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A rack with one simulated nucleo-f4 (f4-a), one simulated nucleo-f446re (f446-a) and
    one real-looking ST-LINK entry for lm3s6965evb that is never connected."""
    path = tmp_path / "rack.yaml"
    path.write_text(
        "schema: 1\n"
        "boards:\n"
        "  - {id: f4-a, board: nucleo-f4, probe: 'hilsim:f4-a', emulator: qemu}\n"
        "  - {id: f446-a, board: nucleo-f446re, probe: 'hilsim:f446-a', emulator: qemu}\n"
        "  - {id: stellaris-1, board: lm3s6965evb, probe: 'stlink:0670FF000000000000000000'}\n"
    )
    monkeypatch.setenv("HIL_RACK", str(path))
    return path


@pytest.fixture(autouse=True)
def _fresh_sim(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("HIL_SIM_FAULTS", raising=False)
    monkeypatch.delenv("HIL_SIM_BOARDS", raising=False)
    forget_chips()
    clear_hints()
    yield
    forget_chips()
    clear_hints()


@dataclass(frozen=True)
class ShellImages:
    hex: Path  # the shell example for nucleo-f4
    changed_hex: Path  # the same with cmd_ping replying "PONG" (one function's bytes differ)


def _build_shell(app_dir: Path, out: Path) -> Path:
    from hil.boards import load_board
    from hil.build import build

    return build(load_board("nucleo-f4"), app_dir, out=out).hex


@pytest.fixture(scope="session")
def shell(tmp_path_factory: pytest.TempPathFactory) -> ShellImages:
    """The real shell image (and a one-function variant), built once per test worker."""
    import os

    from hil.catalog import EXAMPLES_DIR
    from hil.errors import HilError

    if not (EXAMPLES_DIR / "shell" / "main.c").exists():
        pytest.skip("firmware_examples/shell is not there yet")
    root = tmp_path_factory.mktemp("apps")
    for name in ("shell", "lib"):
        if (EXAMPLES_DIR / name).is_dir():
            shutil.copytree(EXAMPLES_DIR / name, root / name)
    changed = root / "shell_changed"
    shutil.copytree(root / "shell", changed)
    main_c = changed / "main.c"
    text = main_c.read_text()
    assert '"pong"' in text
    main_c.write_text(text.replace('"pong"', '"PONG"', 1))
    saved = {k: os.environ.get(k) for k in ("HIL_STATE_DIR", "HIL_CACHE_DIR")}
    os.environ["HIL_STATE_DIR"] = str(tmp_path_factory.mktemp("buildstate"))
    os.environ["HIL_CACHE_DIR"] = str(tmp_path_factory.mktemp("buildcache"))
    try:
        images = ShellImages(_build_shell(root / "shell", tmp_path_factory.mktemp("b1")),
                             _build_shell(changed, tmp_path_factory.mktemp("b2")))
    except HilError as exc:  # no cross toolchain on this machine
        pytest.skip(f"cannot build the shell example: {exc}")
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return images
