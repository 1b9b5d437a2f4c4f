"""The auditor's questions, answered from a store as JSON-ready dicts, and chain verification.

Each question reads only indexed rows (by image hash, digest, toolchain name, rack position)
so it stays fast on a store of millions of records; ``verify`` reads everything once.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hil.audit import provenance
from hil.audit.store import GENESIS, Record, Store, derive, flash_state, record_hash
from hil.errors import UsageError
from hil.fsutil import sha256_file

SHA256_RE = re.compile(r"^[0-9a-fA-F]{64}$")


def resolve_image(store: Store, ref: str) -> str:
    """The HEX sha256 an image reference (file or sha256 of its HEX, ELF or BIN) names."""
    path = Path(ref)
    if path.is_file():
        sha = sha256_file(path)
    elif SHA256_RE.match(ref):
        sha = ref.lower()
    else:
        raise UsageError(f"{ref!r} is neither an image file nor a sha256",
                         hint="pass build/<board>/<app>/firmware.hex or its 64-digit sha256")
    if store.build_of(sha) is not None or store.for_image(sha):
        return sha
    for image, role in store.images_with_digest(sha):
        if role.startswith("artifact:"):
            return image
    raise UsageError(f"image {sha} ({ref}) is not in the audit store {store.location}",
                     hint="was it built by hil with this store (HIL_AUDIT_DB)?")


def build_summary(rec: Record) -> dict[str, Any]:
    """The auditor's view of a build record."""
    b = rec.payload.get("build") or {}
    tc = b.get("toolchain") or {}
    tools = tc.get("tools") or {}
    prov = rec.payload.get("provenance") or {}
    compiler = {role: tools[role] for role in ("cc", "cc1") if role in tools}
    return {
        "seq": rec.seq,
        "time": rec.time,
        "image_sha256": rec.image_sha256,
        "board": b.get("board"),
        "app": b.get("app"),
        "app_version": b.get("app_version"),
        "out_dir": rec.payload.get("out_dir"),
        "toolchain": {
            "name": tc.get("name"), "version": tc.get("version"), "triple": tc.get("triple"),
            "id": tc.get("id"), "compiler": compiler, "tools": tools,
            "libraries": tc.get("libraries") or {},
        },
        "git": b.get("git") or {},
        "sources": b.get("sources") or [],
        "artifacts": b.get("artifacts") or {},
        "regions": b.get("regions") or [],
        "reproducible_checked": bool(b.get("reproducible_checked")),
        "signed": bool(prov.get("envelope")),
        "host": b.get("host"),
        "external": bool(b.get("external")),
        "source": b.get("source") or {},
        "compiler_named": tc.get("compiler"),
    }


def _event(rec: Record) -> dict[str, Any]:
    out = {"seq": rec.seq, "time": rec.time, "kind": rec.kind, "image_sha256": rec.image_sha256}
    out.update(rec.payload)
    if rec.kind == "flash":
        out["state"] = flash_state(rec.payload)  # also for records older than the field
    return out


def image(store: Store, ref: str) -> dict[str, Any]:
    """Which toolchain built an image, from what, where it was flashed, every verdict."""
    sha = resolve_image(store, ref)
    records = store.for_image(sha)
    builds = [build_summary(r) for r in records if r.kind == "build"]
    flashes = [_event(r) for r in records if r.kind == "flash"]
    tests = [_event(r) for r in records if r.kind == "test"]
    running = [{"location": loc, "since": rec.time, "seq": rec.seq}
               for loc, rec in store.current()
               if rec.image_sha256 == sha and flash_state(rec.payload) == "runs"]
    return {
        "image_sha256": sha,
        "builds": builds,
        "flashes": flashes,
        "tests": {ex: [t for t in tests if t.get("executor") == ex] for ex in ("hardware", "qemu")},
        "running_on": running,
    }


def toolchain(store: Store, ref: str, *, limit: int = 200) -> dict[str, Any]:
    """Every image a toolchain (name[@version], or sha256 of it or any tool/library) built,
    and where those images run now."""
    if SHA256_RE.match(ref):
        sha = ref.lower()
        builds, total, roles = store.builds_with_digest(sha, limit)

        def matches(rec: Record) -> bool:
            return any(d[0] == sha for d in derive("build", rec.payload).digests)
        query: dict[str, Any] = {"sha256": sha, "matched_as": roles}
    else:
        name, _, version = ref.partition("@")
        builds, total = store.builds_by_toolchain(name, version or None, limit)

        def matches(rec: Record) -> bool:
            tc = (rec.payload.get("build") or {}).get("toolchain") or {}
            return tc.get("name") == name and (not version or tc.get("version") == version)
        query = {"name": name, "version": version or None}
    if total == 0:
        raise UsageError(f"no build in the audit store {store.location} used toolchain {ref!r}",
                         hint="give a toolchain name (gcc, clang, gcc@12.2.0) or the sha256 of "
                              "the toolchain id or of one of its tools")
    toolchains: dict[str, dict[str, Any]] = {}
    images: dict[str, dict[str, Any]] = {}
    for rec in builds:
        s = build_summary(rec)
        tc = s["toolchain"]
        toolchains.setdefault(tc["id"] or "", {k: tc[k] for k in ("name", "version", "id",
                                                                    "compiler")})
        images.setdefault(rec.image_sha256, {
            "image_sha256": rec.image_sha256, "board": s["board"], "app": s["app"],
            "app_version": s["app_version"], "built": s["time"], "toolchain_id": tc["id"],
            "git": s["git"].get("commit"), "out_dir": s["out_dir"]})
    running = []
    current = store.current()
    built = store.builds_of(flash.image_sha256 for _, flash in current)
    for loc, flash in current:
        build = built.get(flash.image_sha256)
        if build is not None and matches(build) and flash_state(flash.payload) == "runs":
            s = build_summary(build)
            running.append({"location": loc, "image_sha256": flash.image_sha256,
                            "board": s["board"], "app": s["app"], "since": flash.time})
    return {"query": query, "builds_total": total, "limit": limit,
            "toolchains": list(toolchains.values()), "images": list(images.values()),
            "running_now": running}


def running_now(store: Store, flash: Record) -> dict[str, Any]:
    """What a rack position runs, from the flash record its location index names.

    ``state`` is ``runs`` (``image_sha256`` and its build say what), or ``unknown`` (a
    flash failed or was interrupted after it began writing: ``image_sha256`` is None, the
    attempt is in ``attempted_image_sha256`` and ``error``; the board needs a re-flash).
    """
    state = flash_state(flash.payload)
    out: dict[str, Any] = {"state": state, "since": flash.time, "seq": flash.seq,
                           "user": flash.payload.get("user"),
                           "verified": bool(flash.payload.get("verified")) and state == "runs"}
    if state == "runs":
        build = store.build_of(flash.image_sha256)
        out.update(image_sha256=flash.image_sha256, needs_reflash=False,
                   build=build_summary(build) if build else None)
    else:
        out.update(image_sha256=None, needs_reflash=True, build=None,
                   attempted_image_sha256=flash.image_sha256, error=flash.payload.get("error"))
    return out


def board(store: Store, name: str, *, limit: int = 200) -> dict[str, Any]:
    """What was flashed to a rack position (or board name), when, by whom, what runs now."""
    records = store.for_location(name, limit)
    if not records:
        raise UsageError(f"no flash or test at {name!r} in the audit store {store.location}",
                         hint="give a rack id as in rack.yaml (or a board name)")
    current = None
    seq = store.locations().get(name)
    if seq is not None:
        flash = store.by_seq(seq)
        if flash is not None:
            current = running_now(store, flash)
    return {
        "location": name,
        "running_now": current,
        "flashes": [_event(r) for r in records if r.kind == "flash"],
        "tests": [_event(r) for r in records if r.kind == "test"],
        "recoveries": [_event(r) for r in records if r.kind == "recovery"],
    }


# --- verification ----------------------------------------------------------------------------


@dataclass
class VerifyResult:
    """Outcome of ``verify``: ``problems`` lists ``(seq, message)``, first bad record first."""

    records: int = 0
    head_seq: int = 0
    head_hash: str = GENESIS
    signatures_checked: int = 0
    signatures_unchecked: int = 0
    problems: list[tuple[int, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "records": self.records, "head_seq": self.head_seq,
                "head_hash": self.head_hash, "signatures_checked": self.signatures_checked,
                "signatures_unchecked": self.signatures_unchecked,
                "problems": [{"seq": s, "message": m} for s, m in self.problems]}


MAX_PROBLEMS = 50
_BLOCK = 1000


def verify(store: Store, public_keys: list[Any] | None = None, *,
           expect_head: str | None = None) -> VerifyResult:
    """Check the hash chain, the head, the derived indexes and any build signatures.

    A record is named by its ``seq``. Signatures are checked against ``public_keys``; an
    envelope with no trusted key counts as unchecked (a problem if keys were given).
    """
    result = VerifyResult()
    problems = result.problems

    def problem(seq: int, msg: str) -> None:
        if len(problems) < MAX_PROBLEMS:
            problems.append((seq, msg))

    prev_hash, prev_seq = GENESIS, 0
    expected_digests = hashlib.sha256()
    blocks_expected: dict[int, str] = {}
    block_hash = hashlib.sha256()
    current_block = 0
    locations: dict[str, int] = {}
    for row in store.iter_raw():
        (seq, time, kind, image, text, stored_prev, stored_hash,
         board_col, rack_col, tc_id, tc_name, tc_version) = row
        seq = int(seq)
        result.records += 1
        if seq != prev_seq + 1:
            if seq <= prev_seq:
                problem(seq, f"record {seq}: out of order after record {prev_seq}")
            else:
                missing = (f"record {prev_seq + 1}" if seq == prev_seq + 2
                           else f"records {prev_seq + 1}..{seq - 1}")
                problem(prev_seq + 1, f"{missing} missing (deleted): record {seq} follows "
                                      f"record {prev_seq}")
        if record_hash(seq, time, kind, image, stored_prev, text) != stored_hash:
            problem(seq, f"record {seq} ({kind}, {time}): contents do not match its hash "
                         "(the record was edited)")
        if stored_prev != prev_hash:
            problem(seq, f"record {seq} ({kind}, {time}): prev_hash does not match the hash of "
                         f"the record before it (record {prev_seq} was edited, or records "
                         "were deleted or reordered)")
        try:
            payload = json.loads(text)
        except ValueError:
            payload = None
            problem(seq, f"record {seq}: payload is not JSON")
        if isinstance(payload, dict):
            d = derive(kind, payload)
            if (board_col, rack_col, tc_id, tc_name, tc_version) != (
                    d.board, d.rack_id, d.toolchain_id, d.toolchain_name, d.toolchain_version):
                problem(seq, f"record {seq}: index columns (board, rack_id, toolchain) differ "
                             "from its payload (edited to hide it from queries)")
            if d.location:
                locations[d.location] = seq
            block = seq // _BLOCK
            if block != current_block:
                blocks_expected[current_block] = block_hash.hexdigest()
                block_hash, current_block = hashlib.sha256(), block
            for sha, role in d.digests:
                line = f"{seq} {sha} {role}\n".encode()
                expected_digests.update(line)
                block_hash.update(line)
            if kind == "build":
                _check_signature(result, seq, image, payload, public_keys, problem)
        prev_hash, prev_seq = stored_hash, seq
    blocks_expected[current_block] = block_hash.hexdigest()
    result.head_seq, result.head_hash = store.head()
    if (result.head_seq, result.head_hash) != (prev_seq, prev_hash):
        gone = (f"record {result.head_seq}" if result.head_seq == prev_seq + 1 else
                f"records {prev_seq + 1}..{result.head_seq}")
        problem(prev_seq + 1, f"{gone} missing (deleted) or the head edited: the head names "
                              f"record {result.head_seq} ({result.head_hash[:16]}), the chain "
                              f"ends at record {prev_seq} ({prev_hash[:16]})")
    if expect_head and expect_head.lower() not in (result.head_hash, prev_hash):
        problem(prev_seq, f"head hash {prev_hash} is not the expected {expect_head}: the store "
                          "was rewritten or rolled back since that hash was taken")
    _check_digests(store, expected_digests.hexdigest(), blocks_expected, problem)
    if store.locations() != locations:
        problem(0, "the rack-position index (audit_location) differs from the newest flash "
                   "records that wrote to each position")
    problems.sort(key=lambda p: p[0] if p[0] else 1 << 62)
    return result


def _check_digests(store: Store, expected: str, blocks_expected: dict[int, str],
                   problem: Any) -> None:
    actual = hashlib.sha256()
    blocks: dict[int, Any] = {}
    for seq, sha, role in store.iter_digests():
        line = f"{int(seq)} {sha} {role}\n".encode()
        actual.update(line)
        blocks.setdefault(int(seq) // _BLOCK, hashlib.sha256()).update(line)
    if actual.hexdigest() == expected:
        return
    empty = hashlib.sha256().hexdigest()
    for block in sorted(set(blocks_expected) | set(blocks)):
        got = blocks[block].hexdigest() if block in blocks else empty
        if got != blocks_expected.get(block, empty):
            first, last = block * _BLOCK, (block + 1) * _BLOCK - 1
            seq = _first_digest_difference(store, first, last) or max(first, 1)
            problem(seq, f"record {seq}: its rows in the digest index (audit_digest) differ "
                         "from its payload (edited to hide a build from toolchain queries)")
            return


def _first_digest_difference(store: Store, first: int, last: int) -> int | None:
    expected: dict[int, set[tuple[str, str]]] = {}
    for row in store.iter_raw(first, last):
        try:
            payload = json.loads(row[4])
        except ValueError:
            continue
        expected[int(row[0])] = set(derive(row[2], payload).digests)
    actual: dict[int, set[tuple[str, str]]] = {}
    for seq, sha, role in store.iter_digests(first, last):
        actual.setdefault(int(seq), set()).add((sha, role))
    for seq in sorted(set(expected) | set(actual)):
        if expected.get(seq, set()) != actual.get(seq, set()):
            return seq
    return None


def _check_signature(result: VerifyResult, seq: int, image: str, payload: dict[str, Any],
                     public_keys: list[Any] | None, problem: Any) -> None:
    envelope = (payload.get("provenance") or {}).get("envelope")
    if not envelope:
        return
    signer_ids = {s.get("keyid") for s in envelope.get("signatures") or []
                  if isinstance(s, dict)}
    trusted = [k for k in public_keys or [] if provenance.key_id(k) in signer_ids]
    if not trusted:
        result.signatures_unchecked += 1
        if public_keys:
            problem(seq, f"record {seq}: build is signed by key(s) "
                         f"{', '.join(sorted(str(i)[:16] for i in signer_ids))} which are not "
                         "trusted")
        return
    try:
        stmt = provenance.verify_envelope(envelope, trusted)
    except Exception as exc:  # noqa: BLE001 - any failure to verify is a finding, not a crash
        problem(seq, f"record {seq}: provenance signature invalid: {exc}")
        return
    digests = {s.get("digest", {}).get("sha256") for s in stmt.get("subject") or []}
    if image not in digests:
        problem(seq, f"record {seq}: signed statement does not name image {image[:16]}")
    result.signatures_checked += 1


def verify_statement_file(path: Path, public_keys: list[Any]) -> dict[str, Any]:
    """Verify a DSSE envelope file; also check its subjects against files beside it."""
    try:
        envelope = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read envelope {path}: {exc}") from exc
    stmt = provenance.verify_envelope(envelope, public_keys)
    problems = provenance.validate_statement(stmt)
    subjects = []
    for s in stmt.get("subject") or []:
        f = path.parent / s.get("name", "")
        actual = sha256_file(f) if f.is_file() else None
        subjects.append({"name": s.get("name"), "sha256": s["digest"]["sha256"],
                         "file_matches": None if actual is None else
                         actual == s["digest"]["sha256"]})
    return {"envelope": str(path), "valid_structure": not problems, "problems": problems,
            "subjects": subjects}


# --- flaky tests -----------------------------------------------------------------------------

_FAILED = ("failed", "error")


def _where(payload: dict[str, Any], rack_id: str | None = None) -> str:
    """Where a case ran, for the flaky table: the rack id, else the board (``(qemu)`` when
    it ran in a plain QEMU machine)."""
    rack = rack_id or payload.get("rack_id")
    if rack and "," not in str(rack):
        return str(rack)
    board = str(payload.get("board") or "?")
    if rack:  # workers leased several entries and the case did not say which
        return f"{board} ({rack})"
    return f"{board} (qemu)" if payload.get("executor") == "qemu" else board


def flaky(store: Store, *, since: str | None = None, limit: int = 100_000) -> dict[str, Any]:
    """Per test case (app + case name) and board/rack id: runs, failures and flaky runs (the
    case failed in one attempt and passed in a later attempt of the same cell run), with a
    diagnosis per test: flaky on every board it ran on (the test) or only on some (the board).

    Reads the ``cases`` of test records (records without them, older than the field, are
    counted in ``records_without_cases``); attempts that ended in an infrastructure failure
    are left out (their failures are the rack's, not the test's)."""
    records = sorted(store.since(since, ("test",), limit=limit), key=lambda r: r.seq)
    runs: dict[str, list[Record]] = {}
    without = 0
    for rec in records:
        if not isinstance(rec.payload.get("cases"), list):
            without += 1
            continue
        runs.setdefault(str(rec.payload.get("cell_run") or f"record-{rec.seq}"), []).append(rec)
    # (app, case) -> where -> counts
    stats: dict[tuple[str, str], dict[str, dict[str, int]]] = {}
    for attempts in runs.values():
        attempts.sort(key=lambda r: (int(r.payload.get("attempt") or 0), r.seq))
        failed_at: dict[tuple[str, str], list[str]] = {}  # earlier failures in this cell run
        for rec in attempts:
            payload = rec.payload
            if payload.get("outcome") == "infrastructure":
                continue
            app = str(payload.get("app") or "?")
            for item in payload["cases"]:
                if not isinstance(item, list) or len(item) < 2:
                    continue
                name, status = str(item[0]), str(item[1])
                if status not in ("passed", *_FAILED):
                    continue
                key = (app, name)
                where = _where(payload, item[2] if len(item) > 2 else None)
                row = stats.setdefault(key, {}).setdefault(
                    where, {"runs": 0, "failures": 0, "flaky": 0})
                row["runs"] += 1
                if status in _FAILED:
                    row["failures"] += 1
                    failed_at.setdefault(key, []).append(where)
                elif failed_at.get(key):  # failed before, passes now: flaky where it failed
                    for place in failed_at.pop(key):
                        stats[key][place]["flaky"] += 1
    tests: list[dict[str, Any]] = []
    for (app, name), boards in stats.items():
        rows: list[dict[str, Any]] = [{"board": where, **counts}
                                      for where, counts in sorted(boards.items())]
        tests.append({"app": app, "case": name, "boards": rows,
                      "runs": sum(r["runs"] for r in rows),
                      "failures": sum(r["failures"] for r in rows),
                      "flaky": sum(r["flaky"] for r in rows),
                      "diagnosis": _diagnosis(rows)})
    tests.sort(key=lambda t: (-t["flaky"], -t["failures"], t["app"], t["case"]))
    return {"since": since, "cell_runs": len(runs), "records_without_cases": without,
            "tests": tests}


def _diagnosis(rows: list[dict[str, Any]]) -> str:
    ran = [r["board"] for r in rows if r["runs"]]
    flaky_on = [r["board"] for r in rows if r["flaky"]]
    if flaky_on:
        if len(ran) == 1:
            return (f"flaky on {ran[0]}, the only board it ran on: run it on another board "
                    "to tell a flaky test from a flaky board")
        if len(flaky_on) == len(ran):
            return "flaky on every board it ran on: a flaky test"
        word = "board" if len(flaky_on) == 1 else "boards"
        return f"flaky only on {', '.join(flaky_on)}: look at the {word}"
    if any(r["failures"] for r in rows):
        failed_on = [r["board"] for r in rows if r["failures"]]
        return f"failed on {', '.join(failed_on)}, no later attempt passed: not flaky"
    return "passed every run"
