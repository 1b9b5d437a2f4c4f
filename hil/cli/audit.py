"""``hil audit``: answer the auditor's questions from the audit store; verify it; report."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hil.audit import default_key_path, provenance, queries, report, trusted_public_keys
from hil.audit.store import ENV_VAR, GENESIS, open_store
from hil.cli import _args
from hil.errors import AuditError, UsageError

NAME = "audit"
HELP = "which toolchain built an image, where it ran, verify the tamper-evident record"
DESCRIPTION = f"""\
Questions answered from the audit store (SQLite at <state dir>/audit.sqlite by default;
{ENV_VAR} or --db takes a path or a postgresql:// URL):

  hil audit image FILE|SHA256      toolchain, commit, sources, flashes and test verdicts
  hil audit toolchain NAME|SHA256  every image a toolchain (or one of its tools) built, and
                                   where those images run now
  hil audit board RACK_ID          what was flashed there, when, by whom, what runs now
  hil audit flaky [--since DATE]   per test case and board: runs, failures, flaky runs,
                                   and whether the test or a board is flaky
  hil audit verify                 check the hash chain and signatures (exit 21 on failure;
                                   an empty or missing store fails unless --allow-empty)
  hil audit report --html FILE     self-contained HTML report
  hil audit keygen                 make the Ed25519 key builds are signed with
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="audit_command", metavar="QUESTION", required=True)

    def common(p: argparse.ArgumentParser, json_flag: bool = True) -> None:
        p.add_argument("--db", metavar="PATH|URL",
                       help=f"audit store (default: ${ENV_VAR} or <state dir>/audit.sqlite)")
        if json_flag:
            p.add_argument("--json", action="store_true", help="print JSON instead of tables")

    p = sub.add_parser("image", help="provenance and history of one image")
    p.add_argument("image", metavar="FILE|SHA256", help="a .hex/.elf/.bin file or its sha256")
    common(p)
    p = sub.add_parser("toolchain", help="images built by a toolchain and where they run")
    p.add_argument("toolchain", metavar="NAME|SHA256",
                   help="gcc, clang, gcc@12.2.0, or the sha256 of a toolchain id, compiler, "
                        "assembler, linker, objcopy or library")
    p.add_argument("--limit", type=_args.records, default=200, help="newest N builds (default 200)")
    common(p)
    p = sub.add_parser("board", help="flash and test history of a rack position")
    p.add_argument("rack_id", metavar="RACK_ID", help="rack id (or board name)")
    p.add_argument("--limit", type=_args.records, default=200,
                   help="newest N records (default 200)")
    common(p)
    p = sub.add_parser("flaky", help="flake rates per test case and board")
    p.add_argument("--since", metavar="DATE",
                   help="only test runs from DATE (YYYY-MM-DD[THH:MM], UTC)")
    common(p)
    p = sub.add_parser("verify", help="check the hash chain and signatures")
    p.add_argument("--key", action="append", type=Path, default=[], metavar="PUB",
                   help="trusted Ed25519 public key (repeatable; default: the *.pub keys in "
                        "<state dir>/keys/)")
    p.add_argument("--head", metavar="HASH",
                   help="head hash kept from an earlier verify: fail if the store was "
                        "rewritten or rolled back since")
    p.add_argument("--statement", type=Path, metavar="ENVELOPE",
                   help="verify a provenance.intoto.dsse.json file instead of the store")
    p.add_argument("--allow-empty", action="store_true",
                   help="accept an empty or missing store (0 records) as verified; without "
                        "it that is a failure, since a store that recorded anything never "
                        "becomes empty (it was deleted, truncated or replaced)")
    common(p)
    p = sub.add_parser("report", help="write a self-contained HTML report")
    p.add_argument("--html", type=Path, required=True, metavar="FILE", help="output file")
    p.add_argument("--since", metavar="DATE", help="only records from DATE (YYYY-MM-DD[THH:MM])")
    p.add_argument("--limit", type=_args.records, default=1000,
                   help="at most N images (default 1000)")
    common(p, json_flag=False)
    p = sub.add_parser("keygen", help="make an Ed25519 signing key for build provenance")
    p.add_argument("--out", type=Path, default=None, metavar="PATH",
                   help="private key file (default <state dir>/keys/audit-ed25519.pem); "
                        "public key is PATH.pub")
    p.add_argument("--force", action="store_true", help="replace an existing key")


def run(args: argparse.Namespace) -> int:
    command = args.audit_command
    if command == "keygen":
        return _keygen(args.out or default_key_path(), args.force)
    if command == "verify" and args.statement:
        return _verify_statement(args.statement, list(args.key), args.json)
    if command == "verify":
        return _verify_store(args)
    if command == "report":
        since = _parse_since(args.since)
        with open_store(args.db) as store:
            data = report.collect(store, since=since, limit=args.limit)
        path = report.write(args.html, data)
        print(f"audit report: {path.resolve()}")
        return 0
    with open_store(args.db) as store:
        if command == "image":
            data = queries.image(store, args.image)
            printer = _print_image
        elif command == "toolchain":
            data = queries.toolchain(store, args.toolchain, limit=args.limit)
            printer = _print_toolchain
        elif command == "board":
            data = queries.board(store, args.rack_id, limit=args.limit)
            printer = _print_board
        elif command == "flaky":
            data = queries.flaky(store, since=_parse_since(args.since))
            printer = _print_flaky
        else:  # pragma: no cover - argparse rejects others
            raise UsageError(f"unknown audit question {command}")
    if args.json:
        print(json.dumps(data, indent=2, sort_keys=True))
    else:
        printer(data)
    return 0


def _verify_store(args: argparse.Namespace) -> int:
    """``hil audit verify``: the chain, head, indexes and signatures; an empty or missing
    store is a failure unless --allow-empty (a missing one is not created)."""
    from hil.audit.backends import SqliteStore

    store = open_store(args.db)
    absent = ""
    if isinstance(store, SqliteStore):
        if not store.path.exists():
            absent = "does not exist"
        elif store.path.is_file() and store.path.stat().st_size == 0:
            absent = "is an empty file (0 bytes)"
    if absent:  # nothing to open: opening would create a store and hide that it was gone
        result = queries.VerifyResult()
        if args.head and args.head.lower() != GENESIS:
            message = (f"head hash {GENESIS} (no records) is not the expected {args.head}: "
                       "the store was deleted or replaced")
            result.problems.append((0, message))
        location = store.location
    else:
        with store:
            keys = trusted_public_keys(list(args.key) or None)
            result = queries.verify(store, keys, expect_head=args.head)
            location = store.location
    data = result.to_json()
    empty = result.records == 0 and result.head_seq == 0 and not args.allow_empty
    if empty:
        data["ok"] = False
        data["empty"] = True
    _print_verify(data, args.json, location)
    if not result.ok:
        message = result.problems[0][1]
        raise AuditError(f"audit store {location} failed verification; first bad record: "
                         f"{message}")
    if empty:
        state = f"{absent}" if absent else "holds 0 records"
        raise AuditError(
            f"audit store {location} {state}: nothing to verify, and a store that has "
            "recorded a build, flash or test never becomes empty (deleted, truncated or "
            "replaced?)",
            hint=f"point --db or {ENV_VAR} at the store hil writes; for a new store that has "
                 "recorded nothing yet pass --allow-empty; --head HASH (the head an earlier "
                 "verify printed) is the strong check")
    return 0


def _parse_since(value: str | None) -> str | None:
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise UsageError(f"--since {value!r} is not a date",
                         hint="use YYYY-MM-DD or YYYY-MM-DDTHH:MM (UTC)") from exc
    if when.tzinfo is not None:  # records are stored in UTC
        when = when.astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S")


def _keygen(path: Path, force: bool) -> int:
    private, public, kid = provenance.generate_key(path, force=force)
    print(f"private key: {private}  (mode 0600; builds are signed with it)")
    print(f"public key:  {public}  (give this to whoever verifies)")
    print(f"key id:      {kid}")
    if path != default_key_path():
        print(f"sign builds with it: export HIL_AUDIT_KEY={private}")
    return 0


def _verify_statement(path: Path, keys: list[Path], as_json: bool) -> int:
    public = trusted_public_keys(keys or None)
    if not public:
        raise UsageError("no public key to verify with",
                         hint="pass --key PUB, or make one with `hil audit keygen`")
    data = queries.verify_statement_file(path, public)
    if as_json:
        print(json.dumps(data, indent=2))
    else:
        print(f"{path}: signature OK")
        for s in data["subjects"]:
            state = {True: "file matches", False: "FILE DIFFERS", None: "file absent"}[
                s["file_matches"]]
            print(f"  {s['name']:<16} {s['sha256']}  {state}")
    bad = [s["name"] for s in data["subjects"] if s["file_matches"] is False]
    if data["problems"]:
        raise AuditError(f"{path}: not a valid in-toto v1/SLSA v1 statement: "
                         + "; ".join(data["problems"]))
    if bad:
        raise AuditError(f"{path}: signed digest differs from the file(s) {', '.join(bad)}")
    return 0


# --- terminal output -------------------------------------------------------------------------


def table(headers: list[str], rows: list[list[Any]], indent: str = "  ") -> str:
    """A plain text table (no colour, stable columns)."""
    cells = [[("" if v is None else str(v)) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    lines = [indent + "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip(),
             indent + "  ".join("-" * w for w in widths)]
    lines += [indent + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
              for r in cells]
    return "\n".join(lines)


def _yes(value: Any) -> str:
    return "yes" if value else "no"


_OUTCOMES = {"runs": "written, verified", "unknown": "FAILED mid-write: needs re-flash",
             "untouched": "failed, flash untouched"}


def _outcome(flash: dict[str, Any]) -> str:
    return _OUTCOMES.get(flash.get("state", ""), str(flash.get("state")))


def _distinct_builds(builds: list[dict[str, Any]]) -> list[tuple[dict[str, Any], list]]:
    """Builds of one image that differ in what matters (toolchain, sources, commit, output,
    host), each with the later records that repeat it (a rebuild from the cache)."""
    groups: dict[str, tuple[dict[str, Any], list]] = {}
    for b in builds:
        key = json.dumps([b["toolchain"].get("id"), b.get("git"), b.get("out_dir"),
                          b.get("host"), b.get("board"), b.get("app"),
                          [s.get("sha256") for s in b.get("sources", [])]],
                         sort_keys=True, default=str)
        if key in groups:
            groups[key][1].append(b)
        else:
            groups[key] = (b, [])
    return list(groups.values())


def _print_image(d: dict[str, Any]) -> None:
    out = sys.stdout
    print(f"image {d['image_sha256']}  (sha256 of the HEX; of the flashed file when no build "
          "has it)", file=out)
    for b, again in _distinct_builds(d["builds"]):
        tc = b["toolchain"]
        git = b["git"]
        commit = git.get("commit") or "(not in git)"
        print(f"\nbuilt {b['time']}  record {b['seq']}  {b['board']}/{b['app']} "
              f"{b['app_version'] or ''}".rstrip())
        if again:
            print(f"  built again {len(again)} time(s) from the same sources with the same "
                  f"toolchain: records {', '.join(str(r['seq']) for r in again)} "
                  f"(last {again[-1]['time']})")
        print(f"  output:        {b['out_dir']}")
        if b.get("external"):
            _print_external(b)
            continue
        print(f"  toolchain:     {tc['name']} {tc['version']} ({tc['triple']})")
        print(f"  toolchain id:  {tc['id']}")
        print(f"  commit:        {commit}{' (dirty tree)' if git.get('dirty') else ''}")
        print(f"  host:          {b['host']}")
        print(f"  reproducible checked: {_yes(b['reproducible_checked'])}   "
              f"provenance signed: {_yes(b['signed'])}")
        print("  tools (sha256 of the binary executed):")
        print(table(["role", "sha256", "path", "version"],
                    [[role, t.get("sha256"), t.get("path"), t.get("version")]
                     for role, t in sorted(tc["tools"].items())], indent="    "))
        if tc["libraries"]:
            print("  libraries linked in:")
            print(table(["name", "sha256", "path"],
                        [[n, lib.get("sha256"), lib.get("path")]
                         for n, lib in sorted(tc["libraries"].items())], indent="    "))
        print(f"  sources ({len(b['sources'])}):")
        print(table(["sha256", "path"], [[s["sha256"], s["path"]] for s in b["sources"]],
                    indent="    "))
    print("\nflashed to:")
    if d["flashes"]:
        print(table(["time", "rack id", "board", "probe", "chip id", "verified", "outcome",
                     "user"],
                    [[f["time"], f.get("rack_id"), f.get("board"), f.get("probe"),
                      f.get("chip_id"), _yes(f.get("verified")), _outcome(f), f.get("user")]
                     for f in d["flashes"]]))
    else:
        print("  (never flashed)")
    for executor in ("hardware", "qemu"):
        tests = d["tests"][executor]
        print(f"\ntests on {executor}:")
        if tests:
            print(table(["time", "rack id", "board", "passed", "failed", "skipped", "junit"],
                        [[t["time"], t.get("rack_id"), t.get("board"), t.get("passed"),
                          t.get("failed"), t.get("skipped"), t.get("junit")] for t in tests]))
        else:
            print("  (none)")
    running = ", ".join(r["location"] for r in d["running_on"]) or "(nowhere)"
    print(f"\nrunning now on: {running}")


def _print_external(b: dict[str, Any]) -> None:
    """An image hil did not build: where it came from and what its ELF says."""
    source = b.get("source") or {}
    where = source.get("build_dir") or source.get("path")
    print(f"  external build: {source.get('kind')} {where}  (not built by hil)")
    print(f"  compiler (from the ELF's .comment): {b.get('compiler_named') or '(not named)'}")
    print(f"  provenance signed: {_yes(b['signed'])}")
    print(table(["artifact", "sha256", "path"],
                [[role, a.get("sha256"), a.get("path")]
                 for role, a in sorted(b["artifacts"].items())], indent="    "))


def _print_toolchain(d: dict[str, Any]) -> None:
    q = d["query"]
    what = q.get("sha256") or (q["name"] + (f"@{q['version']}" if q.get("version") else ""))
    extra = f" (matched as {', '.join(q['matched_as'])})" if q.get("matched_as") else ""
    print(f"toolchain {what}{extra}: {d['builds_total']} build(s)"
          + (f", newest {d['limit']} shown" if d["builds_total"] > d["limit"] else ""))
    rows = []
    for tc in d["toolchains"]:
        for role, tool in sorted((tc.get("compiler") or {}).items()):
            rows.append([tc["name"], tc["version"], tc["id"], role, tool.get("sha256"),
                         tool.get("version")])
    print(table(["name", "version", "toolchain id", "tool", "sha256", "version string"], rows))
    print("\nimages built:")
    print(table(["built", "image sha256", "board", "app", "commit"],
                [[i["built"], i["image_sha256"], i["board"], i["app"], (i["git"] or "")[:12]]
                 for i in d["images"]]))
    print("\nrunning now:")
    if d["running_now"]:
        print(table(["rack id", "image sha256", "board", "app", "since"],
                    [[r["location"], r["image_sha256"], r["board"], r["app"], r["since"]]
                     for r in d["running_now"]]))
    else:
        print("  (on no rack position)")


def _print_board(d: dict[str, Any]) -> None:
    print(f"rack position {d['location']}")
    cur = d["running_now"]
    if cur and cur.get("state") == "unknown":
        print(f"  runs now:  unknown, needs re-flash: the flash of "
              f"{cur['attempted_image_sha256']} at {cur['since']} (by {cur['user']}) failed "
              "or was interrupted after writing began")
        if cur.get("error"):
            print(f"             error: {str(cur['error']).splitlines()[0]}")
    elif cur:
        b = cur["build"] or {}
        tc = b.get("toolchain") or {}
        print(f"  runs now:  {cur['image_sha256']}  since {cur['since']} (by {cur['user']}, "
              f"verified: {_yes(cur['verified'])})")
        if b:
            print(f"             {b['board']}/{b['app']} {b.get('app_version') or ''}, built by "
                  f"{tc.get('name')} {tc.get('version')}, commit "
                  f"{(b['git'].get('commit') or '-')[:12]}")
    else:
        print("  runs now:  (unknown: no flash by hil has written this board)")
    print("\nflashes:")
    print(table(["time", "image sha256", "probe", "chip id", "verified", "outcome", "user"],
                [[f["time"], f["image_sha256"], f.get("probe"), f.get("chip_id"),
                  _yes(f.get("verified")), _outcome(f), f.get("user")] for f in d["flashes"]]))
    print("\ntests:")
    print(table(["time", "image sha256", "executor", "passed", "failed", "skipped"],
                [[t["time"], t["image_sha256"], t.get("executor"), t.get("passed"),
                  t.get("failed"), t.get("skipped")] for t in d["tests"]]))
    if d.get("recoveries"):
        print("\nrecovery ladder steps:")
        print(table(["time", "step", "outcome", "seconds", "cause"],
                    [[r["time"], r.get("step"), "recovered" if r.get("ok") else
                      f"failed: {r.get('detail') or ''}"[:60], r.get("seconds"),
                      str(r.get("cause") or "")[:60]] for r in d["recoveries"]]))


def _print_flaky(d: dict[str, Any]) -> None:
    since = f" since {d['since']}" if d["since"] else ""
    shown = [t for t in d["tests"] if t["failures"]]
    print(f"test cases{since}: {len(d['tests'])} in {d['cell_runs']} cell run(s); "
          f"{sum(1 for t in d['tests'] if t['flaky'])} flaky, "
          f"{len(d['tests']) - len(shown)} never failed (not shown)")
    if d["records_without_cases"]:
        print(f"  ({d['records_without_cases']} older test record(s) without per-case "
              "outcomes left out)")
    for t in shown:
        print(f"\n{t['app']}: {t['case']}  ({t['diagnosis']})")
        print(table(["board", "runs", "failures", "flaky", "flake rate"],
                    [[b["board"], b["runs"], b["failures"], b["flaky"],
                      f"{100 * b['flaky'] / b['runs']:.0f}%" if b["runs"] else "-"]
                     for b in t["boards"]]))


def _print_verify(d: dict[str, Any], as_json: bool, location: str) -> None:
    if as_json:
        print(json.dumps(d, indent=2))
        return
    print(f"audit store {location}: {d['records']} record(s)")
    print(f"  head: record {d['head_seq']} hash {d['head_hash']}")
    print(f"  signatures checked: {d['signatures_checked']}"
          + (f", not checked (no trusted key): {d['signatures_unchecked']}"
             if d["signatures_unchecked"] else ""))
    if d.get("empty"):
        print("  EMPTY: no records to verify (pass --allow-empty if this store is new)")
        return
    if d["ok"]:
        print("  chain OK")
        return
    print(f"  FAILED: {len(d['problems'])} problem(s), first bad record first:")
    for p in d["problems"]:
        print(f"    {p['message']}")
