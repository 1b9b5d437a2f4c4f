"""Audit trail: provenance next to every image and a hash-chained record of every build,
flash and test, keyed by the sha256 of the image's HEX file.

The three hooks other parts of hil call:

- :func:`on_build` - called by ``hil.build`` once the artifacts and ``build.json`` are written;
- :func:`record_flash` - called after a flash attempt (verified or not; see
  ``hil.flash.audit_flash`` for what it names);
- :func:`record_test` - called after a test run on QEMU or hardware.

Each appends one record to the store named by ``store`` (a path or URL), else ``HIL_AUDIT_DB``,
else ``<state dir>/audit.sqlite``. A store that cannot be opened or written raises
:class:`hil.errors.AuditError` with the store's location; nothing is dropped silently.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from hil.audit import provenance
from hil.audit.store import FLASH_STATES, Record, now_iso, open_store
from hil.errors import AuditError
from hil.fsutil import atomic_write
from hil.paths import state_dir
from hil.settings import current

KEY_ENV_VAR = "HIL_AUDIT_KEY"
EXECUTORS = ("qemu", "hardware")
#: Why the test plan ran a cell again: after a test failure, after an infrastructure failure.
RETRIES = ("rerun", "infrastructure")
#: Build artifacts a flash can be tied to (by exact file sha256).
FLASHABLE_ARTIFACTS = ("hex", "elf", "bin")

__all__ = [
    "default_key_path",
    "image_sha256_of",
    "on_build",
    "record_flash",
    "record_recovery",
    "record_test",
    "signing_key_path",
    "trusted_public_keys",
    "write_provenance",
]


def default_key_path() -> Path:
    """Where ``hil audit keygen`` puts the signing key by default."""
    return state_dir() / "keys" / "audit-ed25519.pem"


def signing_key_path() -> Path | None:
    """The key builds are signed with: HIL_AUDIT_KEY, else the default key if it exists.

    HIL_AUDIT_KEY naming a missing file is an error (a misconfigured signer must not
    silently produce unsigned builds); HIL_AUDIT_KEY="" turns signing off.
    """
    value = current().audit_key
    if value is not None:
        if not value:
            return None
        path = Path(value).expanduser()
        if not path.is_file():
            raise AuditError(f"{KEY_ENV_VAR}={value}: no such key file",
                             hint="make one with `hil audit keygen --out PATH`, or unset "
                                  f"{KEY_ENV_VAR}")
        return path
    path = default_key_path()
    return path if path.is_file() else None


def trusted_public_keys(paths: list[Path] | None = None) -> list[Any]:
    """Public keys to verify with: the given files, else every ``*.pub`` in the key dir
    and the public half of the signing key."""
    if paths:
        return [provenance.load_public_key(p) for p in paths]
    keys = []
    key_dir = default_key_path().parent
    if key_dir.is_dir():
        keys += [provenance.load_public_key(p) for p in sorted(key_dir.glob("*.pub"))]
    signer = signing_key_path()
    if signer is not None:
        pub = signer.with_name(signer.name + ".pub")
        keys.append(provenance.load_public_key(pub if pub.is_file() else signer))
    return keys


def image_sha256_of(record: dict[str, Any]) -> str:
    """The key of an image in the store: sha256 of its HEX (ELF when there is no HEX)."""
    artifacts = record.get("artifacts") or {}
    for role in ("hex", "elf", "bin"):
        sha = (artifacts.get(role) or {}).get("sha256")
        if sha:
            return str(sha)
    raise AuditError(f"build record for {record.get('board')}/{record.get('app')} has no "
                     "artifact sha256 (artifacts.hex.sha256 expected)")


def _write_json(path: Path, doc: Any) -> bytes:
    data = (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode("utf-8")
    try:
        atomic_write(path, data)
    except OSError as exc:
        raise AuditError(f"cannot write {path}: {exc.strerror}") from exc
    return data


def on_build(out_dir: Path, record: dict[str, Any], *, store: str | None = None) -> Record:
    """Write provenance and SBOM next to the image and append a ``build`` record.

    Writes ``provenance.intoto.json`` (in-toto v1 Statement, SLSA v1 predicate),
    ``sbom.cdx.json`` (CycloneDX 1.5) and, when a signing key is configured
    (HIL_AUDIT_KEY or ``hil audit keygen``), ``provenance.intoto.dsse.json`` into
    ``out_dir``. The store record carries the whole build record, ``out_dir`` and the
    digests of the files written (and the envelope). Raises AuditError when the files or
    the store cannot be written.
    """
    finished = record.get("finished") or now_iso()
    payload = write_provenance(out_dir, record, finished=finished)
    with open_store(store) as s:
        return s.append("build", image_sha256_of(record), payload, time=finished)


def build_recorded(out_dir: Path, record: dict[str, Any], *, store: str | None = None) -> bool:
    """Whether ``on_build`` has nothing to add for an image taken up to date from
    ``out_dir``: the store's newest build record of it is this output's, and the statement,
    SBOM and (exactly when a signing key is configured) the envelope are beside it."""
    out_dir = Path(out_dir)
    signed = signing_key_path() is not None
    if not (out_dir / provenance.STATEMENT_FILE).is_file() or \
            not (out_dir / provenance.SBOM_FILE).is_file() or \
            (out_dir / provenance.ENVELOPE_FILE).is_file() != signed:
        return False
    with open_store(store) as s:
        found = s.build_of(image_sha256_of(record))
    return found is not None and found.payload.get("out_dir") == str(out_dir) and \
        found.payload.get("build") == record


def write_provenance(out_dir: Path, record: dict[str, Any], *,
                     finished: str | None = None) -> dict[str, Any]:
    """Write the statement, SBOM and (with a signing key) envelope of ``record`` into
    ``out_dir``; returns the store payload naming them. Raises AuditError."""
    out_dir = Path(out_dir)
    finished = finished or record.get("finished") or now_iso()
    stmt = provenance.statement(record, started=record.get("started"), finished=finished)
    statement_bytes = _write_json(out_dir / provenance.STATEMENT_FILE, stmt)
    sbom_bytes = _write_json(out_dir / provenance.SBOM_FILE,
                             provenance.sbom(record, timestamp=finished))
    envelope = None
    key_path = signing_key_path()
    envelope_path = out_dir / provenance.ENVELOPE_FILE
    if key_path is not None:
        envelope = provenance.sign(stmt, provenance.load_private_key(key_path))
        _write_json(envelope_path, envelope)
    elif envelope_path.exists():
        envelope_path.unlink()  # an envelope from an earlier signed build no longer applies
    payload = {
        "build": record,
        "out_dir": str(out_dir),
        "provenance": {
            "statement": provenance.STATEMENT_FILE,
            "statement_sha256": hashlib.sha256(statement_bytes).hexdigest(),
            "sbom": provenance.SBOM_FILE,
            "sbom_sha256": hashlib.sha256(sbom_bytes).hexdigest(),
            "envelope": envelope,
        },
    }
    return payload


def record_flash(
    *,
    board: str,
    rack_id: str | None,
    probe: str | None,
    chip_id: str | int | None,
    verified: bool,
    image_sha256: str | None = None,
    image: dict[str, Any] | None = None,
    state: str | None = None,
    erased: int = 0,
    programmed: int = 0,
    user: str | None = None,
    ok: bool = True,
    error: str | None = None,
    store: str | None = None,
) -> Record:
    """Append a ``flash`` record: an image was (or was to be) written to a board on the rack.

    image: what was given to the flasher, ``{"path", "sha256", "content_sha256"}`` (sha256
    of the file; canonical hash of the bytes it programs, None when it could not be read as
    an image). The record is keyed by the image of the build whose HEX, ELF or BIN artifact
    has exactly that file's sha256 (``image.build_seq`` and ``image.artifact`` name it),
    else by the file's own sha256: a flash is never tied to a build by a file name.
    image_sha256: the key, given directly instead (no build lookup).
    board: board name (e.g. ``nucleo-f4``); rack_id: the rack position / board id the lease
    named (None outside a rack); probe: the debug probe's unique id; chip_id: the chip id
    read from the target (int is stored as ``0x...``); verified: read-back matched;
    state: what the board holds afterwards, one of FLASH_STATES (default: ``runs`` when ok
    and verified, else ``unknown``); only ``runs`` and ``unknown`` move what ``hil audit``
    says the position (rack_id, else board) runs now.
    erased / programmed: counts of sectors erased and bytes programmed; user: who flashed
    (default: the login name); ok / error: whether the flash completed and why not.
    Returns the stored record; raises AuditError for an inconsistent record or an
    unwritable store.
    """
    if state is None:
        state = "runs" if ok and verified else "unknown"
    if state not in FLASH_STATES:
        raise AuditError(f"flash record state {state!r} is not one of {', '.join(FLASH_STATES)}")
    if state == "runs" and not (ok and verified):
        raise AuditError("a flash that did not complete and verify cannot be recorded as "
                         "running on the board")
    if image_sha256 is None and not (image and image.get("sha256")):
        raise AuditError("flash record names no image (image_sha256 or image.sha256)")
    payload: dict[str, Any] = {
        "board": board,
        "rack_id": rack_id,
        "probe": probe,
        "chip_id": f"0x{chip_id:08x}" if isinstance(chip_id, int) else chip_id,
        "verified": bool(verified),
        "erased": int(erased),
        "programmed": int(programmed),
        "user": user or _user(),
        "ok": bool(ok),
        "error": error,
        "state": state,
    }
    with open_store(store) as s:
        if image_sha256 is None:
            assert image is not None
            file_sha = str(image["sha256"]).lower()
            tie = s.build_with_artifact(file_sha, FLASHABLE_ARTIFACTS)
            image_sha256 = tie[0].image_sha256 if tie else file_sha
            payload["image"] = {
                "path": image.get("path"), "sha256": file_sha,
                "content_sha256": image.get("content_sha256"),
                "build_seq": tie[0].seq if tie else None, "artifact": tie[1] if tie else None,
            }
        return s.append("flash", image_sha256, payload)


def record_test(
    *,
    image_sha256: str,
    board: str,
    rack_id: str | None,
    executor: str,
    passed: int,
    failed: int,
    skipped: int,
    junit: str | Path | None,
    toolchain: str | None,
    errors: int = 0,
    user: str | None = None,
    store: str | None = None,
    cancelled: str | None = None,
    app: str | None = None,
    seconds: float | None = None,
    outcome: str | None = None,
    attempt: int | None = None,
    retry: str | None = None,
    cell_run: str | None = None,
    cases: list[list[str]] | None = None,
    work_dir: str | Path | None = None,
) -> Record:
    """Append a ``test`` record: a test run's verdict against an image.

    image_sha256: sha256 of the HEX under test; board: board name; rack_id: rack position
    (None for QEMU); executor: ``"qemu"`` or ``"hardware"``; passed / failed / skipped /
    errors: verdict counts; junit: path of the JUnit XML written (stored as given);
    toolchain: toolchain name or fingerprint id that built the image (for the report);
    user: who ran it (default: the login name); cancelled: the signal that cancelled the
    run (``"SIGTERM"``; stored as ``cancelled`` only for a cancelled run, whose counts are
    what finished); app and seconds: the app and how long the run took (the gate's shard
    balance reads them). outcome: the run's outcome kind (``passed``, ``failed``,
    ``infrastructure`` ...); attempt, retry and cell_run: the test plan's attempt number of
    the cell, why it ran again (``rerun`` after a test failure, ``infrastructure`` after an
    infrastructure failure; None for a first attempt) and the id shared by the attempts of
    one cell run; cases: ``[name, status]`` (or ``[name, status, rack_id]``) per test case
    (``hil audit flaky`` reads them); work_dir: the run's directory (transcripts and logs,
    which the rack page links to). All optional: older records lack them.
    Returns the stored record; raises AuditError for an unknown executor or retry, or an
    unwritable store.
    """
    if executor not in EXECUTORS:
        raise AuditError(f"test record executor {executor!r} is not one of "
                         f"{', '.join(EXECUTORS)}")
    payload: dict[str, Any] = {
        "board": board,
        "rack_id": rack_id,
        "executor": executor,
        "passed": int(passed),
        "failed": int(failed),
        "skipped": int(skipped),
        "errors": int(errors),
        "junit": str(junit) if junit is not None else None,
        "toolchain": toolchain,
        "user": user or _user(),
    }
    if cancelled:
        payload["cancelled"] = cancelled
    if app is not None:
        payload["app"] = app
    if seconds is not None:
        payload["seconds"] = round(float(seconds), 3)
    if outcome is not None:
        payload["outcome"] = outcome
    if attempt is not None:
        payload["attempt"] = int(attempt)
    if retry is not None:
        if retry not in RETRIES:
            raise AuditError(f"test record retry {retry!r} is not one of {', '.join(RETRIES)}")
        payload["retry"] = retry
    if cell_run is not None:
        payload["cell_run"] = cell_run
    if cases is not None:
        payload["cases"] = [[str(v) for v in c] for c in cases]
    if work_dir is not None:
        payload["work_dir"] = str(work_dir)
    with open_store(store) as s:
        return s.append("test", image_sha256, payload)


def record_recovery(
    *,
    image_sha256: str,
    board: str,
    rack_id: str,
    step: str,
    ok: bool,
    seconds: float,
    cause: str,
    detail: str | None = None,
    store: str | None = None,
) -> Record:
    """Append a ``recovery`` record: one step of the recovery ladder (hil.recovery) on a
    rack board, while it ran the image ``image_sha256``.

    step: the ladder step (``reconnect-console``, ``swd-reset``, ``connect-under-reset``,
    ``power-cycle``, ``reflash``); ok: the board answered after it (the step that recovered
    it is the one with ok true); seconds: how long the step took; cause: the failure that
    started the climb (its first line); detail: why the step failed. Raises AuditError for
    an unwritable store.
    """
    payload: dict[str, Any] = {
        "board": board,
        "rack_id": rack_id,
        "step": step,
        "ok": bool(ok),
        "seconds": round(float(seconds), 3),
        "cause": cause,
        "detail": detail,
        "user": _user(),
    }
    with open_store(store) as s:
        return s.append("recovery", image_sha256, payload)


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())
