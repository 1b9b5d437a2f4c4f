"""`--rack FILE` is the rack of the whole command: the simulated probe takes its board and
its faults from that file, not from rack.yaml or HIL_RACK."""

from __future__ import annotations

from pathlib import Path

from hil.cli import main
from hil.errors import ExitCode


def make_hex(path: Path, address: int, data: bytes) -> Path:
    from intelhex import IntelHex

    ih = IntelHex()
    ih.frombytes(data, offset=address)
    ih.write_hex_file(str(path))
    return path


def _rack(path: Path, faults: str | None) -> Path:
    extra = f", sim_faults: '{faults}'" if faults else ""
    path.write_text("schema: 1\nboards:\n"
                    f"  - {{id: f4-o, board: nucleo-f4, probe: 'hilsim:opt-f4', emulator: qemu"
                    f"{extra}}}\n")
    return path


def test_the_faults_of_the_rack_file_given_with_rack_apply(images, tmp_path, monkeypatch,
                                                            capsys):
    monkeypatch.delenv("HIL_RACK", raising=False)
    monkeypatch.chdir(tmp_path)
    _rack(tmp_path / "rack.yaml", None)  # the default rack: no faults
    protected = _rack(tmp_path / "wrp.yaml", "wrp=0")  # sector 0 write-protected
    args = ["flash", "--board", "nucleo-f4", "--probe", "hilsim:opt-f4"]
    assert main([*args, "--image", str(images.base)]) == 0
    capsys.readouterr()
    vectors = (0x20020000).to_bytes(4, "little") + (0x08000101).to_bytes(4, "little")
    changed = make_hex(tmp_path / "changed.hex", 0x08000000, vectors + bytes(range(256)))
    code = main([*args, "--rack", str(protected), "--image", str(changed)])
    err = capsys.readouterr().err
    assert code == ExitCode.FLASH_FAILED, err
    assert "write-protect" in err  # the hint names the likely cause
