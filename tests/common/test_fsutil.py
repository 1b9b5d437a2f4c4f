"""hil.fsutil: whole-or-nothing writes that concurrent writers cannot break, and file hashes."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from hil.fsutil import atomic_write, sha256_file


def _payload(writer: int, round_: int) -> bytes:
    """256 KiB whose every byte names its writer and round: a torn read shows as a mix."""
    return bytes([writer * 16 + round_ % 16]) * (256 << 10)


def test_write_replaces_content_and_leaves_only_the_file(tmp_path: Path):
    target = tmp_path / "report.html"
    target.write_text("old")
    atomic_write(target, "new ✓")
    assert target.read_text(encoding="utf-8") == "new ✓"
    atomic_write(target, b"\x00\xff")
    assert target.read_bytes() == b"\x00\xff"
    assert os.listdir(tmp_path) == ["report.html"]


def test_threads_writing_one_path_never_collide_nor_tear(tmp_path: Path):
    """Threads share a process id, so a temp name made from the pid alone would collide."""
    target = tmp_path / "state.json"
    atomic_write(target, _payload(0, 0))
    errors: list[BaseException] = []
    torn: list[set[int]] = []
    stop = threading.Event()

    def writer(n: int) -> None:
        try:
            for r in range(30):
                atomic_write(target, _payload(n, r))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    def reader() -> None:
        while not stop.is_set():
            seen = set(target.read_bytes())
            if len(seen) != 1:
                torn.append(seen)

    readers = [threading.Thread(target=reader) for _ in range(2)]
    writers = [threading.Thread(target=writer, args=(n,)) for n in range(1, 9)]
    for t in (*readers, *writers):
        t.start()
    for t in writers:
        t.join()
    stop.set()
    for t in readers:
        t.join()
    assert errors == []
    assert torn == []
    assert len(target.read_bytes()) == 256 << 10
    assert os.listdir(tmp_path) == ["state.json"]


def test_processes_writing_one_path_never_collide(tmp_path: Path):
    target = tmp_path / "run.json"
    code = ("import sys; from hil.fsutil import atomic_write\n"
            "for r in range(40): atomic_write(sys.argv[1], sys.argv[2] * 4096)\n")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(target), letter],
                              stderr=subprocess.PIPE, text=True) for letter in "abcd"]
    results = [(p.communicate(timeout=120)[1], p.returncode) for p in procs]
    assert results == [("", 0)] * 4
    assert target.read_text() in {letter * 4096 for letter in "abcd"}
    assert os.listdir(tmp_path) == ["run.json"]


def test_failed_write_keeps_the_old_content_and_no_temp_file(tmp_path: Path):
    target = tmp_path / "out"
    target.mkdir()  # a directory in the way: the rename fails
    (target / "keep").write_text("x")
    with pytest.raises(OSError):
        atomic_write(target, b"data")
    assert sorted(os.listdir(tmp_path)) == ["out"]
    assert (target / "keep").read_text() == "x"


def test_missing_directory_is_an_error_not_created(tmp_path: Path):
    with pytest.raises(FileNotFoundError):
        atomic_write(tmp_path / "no" / "such" / "file", b"data")
    assert os.listdir(tmp_path) == []


def test_new_file_mode_follows_umask_and_can_be_private(tmp_path: Path):
    old = os.umask(0o022)
    try:
        atomic_write(tmp_path / "public", b"x")
        atomic_write(tmp_path / "secret", b"x", mode=0o600)
    finally:
        os.umask(old)
    assert (tmp_path / "public").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "secret").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("size", [
    pytest.param(0, id="empty"),
    pytest.param(5, id="tiny"),
    pytest.param((3 << 20) + 7, id="several-chunks-and-a-tail"),
])
def test_sha256_file_matches_hashlib(tmp_path: Path, size: int):
    data = bytes(i * 7 % 251 for i in range(size))
    path = tmp_path / "blob"
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()
    assert sha256_file(str(path)) == hashlib.sha256(data).hexdigest()


def test_sha256_file_of_empty_file_is_the_known_digest(tmp_path: Path):
    (tmp_path / "e").write_bytes(b"")
    assert sha256_file(tmp_path / "e") == \
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
