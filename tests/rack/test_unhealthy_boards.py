"""When every rack board that could serve is out of service, hil says so at once (or falls
back to QEMU where that is allowed) instead of waiting for a lease that never comes."""

from __future__ import annotations

import pytest

from hil.boards import load_board
from hil.cli import main
from hil.errors import BoardsUnhealthy, ExitCode
from hil.executors import choose_executor
from hil.rack import lease_board, lease_store, load_rack

REASON = {"f4-a": "recovery failed: no console data", "f4-b": "health check failed: no pong"}


@pytest.fixture
def both_unhealthy():
    with lease_store(load_rack()) as store:
        for rack_id, reason in REASON.items():
            store.mark_unhealthy(rack_id, reason)


def test_a_lease_among_unhealthy_boards_is_refused_at_once_naming_each(both_unhealthy):
    with pytest.raises(BoardsUnhealthy) as info:
        lease_board(load_rack(), "nucleo-f4", wait=1800)  # would wait 30 minutes
    text = str(info.value)
    for rack_id, reason in REASON.items():
        assert f"{rack_id}: {reason}" in text
    assert "hil rack check f4-a" in text and "hil rack reset f4-a" in text


def test_one_healthy_board_is_still_leased(both_unhealthy):
    with lease_store(load_rack()) as store:
        store.reset("f4-b")
    lease, entry = lease_board(load_rack(), "nucleo-f4", wait=0)
    with lease:
        assert entry.id == "f4-b"


def test_hil_flash_says_the_boards_are_unhealthy_not_that_someone_holds_them(
        both_unhealthy, capsys, tmp_path):
    from intelhex import IntelHex

    image = tmp_path / "fw.hex"
    ih = IntelHex()
    vectors = (0x20020000).to_bytes(4, "little") + (0x08000101).to_bytes(4, "little")
    ih.frombytes(vectors + bytes(64), offset=0x08000000)
    ih.write_hex_file(str(image))
    for args in (["--board", "nucleo-f4"], ["--board", "nucleo-f4", "--probe", "hilsim:f4-a"]):
        code = main(["flash", *args, "--image", str(image), "--wait", "600"])
        err = capsys.readouterr().err
        assert code == ExitCode.NO_HARDWARE, err
        assert "out of service (unhealthy)" in err and "holds" not in err


def test_auto_falls_back_to_plain_qemu_and_says_which_boards_it_skipped(both_unhealthy):
    choice = choose_executor(load_board("nucleo-f4"), "auto")
    assert choice.kind == "qemu" and not choice.entries  # plain QEMU, no rack board
    assert "unhealthy, skipped: f4-a, f4-b" in choice.reason


@pytest.mark.slow
def test_hil_test_of_one_app_runs_in_plain_qemu_when_its_boards_are_unhealthy(
        both_unhealthy, capsys):
    code = main(["test", "--board", "nucleo-f4", "shell"])
    out = capsys.readouterr()
    assert code == 0, out.out[-3000:] + out.err[-3000:]
    assert "unhealthy, skipped: f4-a, f4-b" in out.err
    assert "not a hardware pass" in out.out
    with lease_store(load_rack()) as store:
        assert store.leases() == {}
        assert not [row for row in store.lease_log() if row[3] == "acquire"]
