"""Synthetic build records of the shape ``hil.build`` writes to build.json, for the audit
tests (imported as ``from auditdata import make_build_record``)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def make_build_record(
    out_dir: Path | None = None,
    *,
    board: str = "nucleo-f4",
    app: str = "shell",
    toolchain: str = "gcc",
    version: str = "12.2.0",
    salt: str = "",
) -> dict[str, Any]:
    """A build.json-shaped record; with ``out_dir`` also writes the artifacts it names."""
    artifacts = {}
    for role, name in (("elf", "firmware.elf"), ("hex", "firmware.hex"),
                       ("bin", "firmware.bin"), ("map", "firmware.map")):
        content = f"{board}/{app}/{toolchain}/{salt}/{role}".encode()
        if out_dir is not None:
            out_dir.mkdir(parents=True, exist_ok=True)
            (out_dir / name).write_bytes(content)
        artifacts[role] = {"path": name, "sha256": hashlib.sha256(content).hexdigest()}
    tools = {role: {"path": f"/usr/bin/arm-none-eabi-{role}",
                    "version": f"arm-none-eabi-{role} {version}",
                    "sha256": sha(f"{toolchain}-{version}-{role}")}
             for role in ("cc", "cc1", "as", "ld", "objcopy")}
    return {
        "schema": 1, "hil_version": "0.1.0",
        "board": board, "board_file": f"boards/{board}.yaml", "board_sha256": sha(board),
        "app": app, "app_dir": f"firmware_examples/{app}", "app_version": "1.0.0",
        "toolchain": {"name": toolchain, "version": version, "triple": "thumbv7em-none-eabihf",
                      "id": sha(f"{toolchain}-{version}"), "tools": tools,
                      "libraries": {"libgcc": {"path": "/usr/lib/gcc/libgcc.a",
                                               "sha256": sha(f"libgcc-{version}")}}},
        "flags": {"cflags": ["-Os", "-Wall"], "ldflags": ["-nostdlib"]},
        "linker_script": {"path": "firmware.ld", "sha256": sha("ld" + board)},
        "sources": [{"path": f"firmware_examples/{app}/main.c", "sha256": sha(app + salt)}],
        "artifacts": artifacts,
        "regions": [
            {"name": "FLASH", "kind": "flash", "origin": 0x08000000, "length": 524288,
             "used": 5120},
            {"name": "RAM", "kind": "ram", "origin": 0x20000000, "length": 131072,
             "used": 2048},
        ],
        "git": {"commit": "a" * 40, "dirty": False},
        "host": "testhost", "reproducible_checked": False,
    }
