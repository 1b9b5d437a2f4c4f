#!/usr/bin/env python3
"""Audit store benchmark: query times of `hil audit image` / `hil audit toolchain` and append
throughput on stores of 10k, 100k and 1M records. Prints figures; asserts nothing.

    .venv/bin/python bench/audit.py                  # SQLite, 10k 100k 1M
    .venv/bin/python bench/audit.py --sizes 10000    # quick run
    .venv/bin/python bench/audit.py --db postgresql://user@127.0.0.1:5432/bench
    .venv/bin/python bench/audit.py --keep /tmp/audit-bench   # reuse generated stores

Records are synthetic but shaped like real ones: 20% builds (each a new image, 40 toolchain
fingerprints, 5 tools and a library each, 4 sources), 20% flashes over 50 rack positions,
60% test runs. The goal is under 50 ms per question at 1M records (indexed, not scanned).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import itertools
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hil.audit import queries
from hil.audit.backends import PostgresStore
from hil.audit.store import Store, open_store

TOOLCHAINS = [("gcc" if i % 2 else "clang", f"{10 + i // 4}.{i % 4}.0") for i in range(40)]
RACKS = [f"rack{i // 10}-slot{i % 10}" for i in range(50)]
BATCH = 5000


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _toolchain(i: int) -> dict[str, Any]:
    name, version = TOOLCHAINS[i]
    return {
        "name": name, "version": version, "triple": "thumbv7em-none-eabihf",
        "id": _sha(f"tc{i}"),
        "tools": {role: {"path": f"/usr/bin/arm-none-eabi-{role}",
                         "version": f"{name} {version}", "sha256": _sha(f"tc{i}{role}")}
                  for role in ("cc", "cc1", "as", "ld", "objcopy")},
        "libraries": {"libgcc": {"path": "/usr/lib/gcc/libgcc.a", "sha256": _sha(f"lib{i}")}},
    }


TOOLCHAIN_RECORDS = [_toolchain(i) for i in range(len(TOOLCHAINS))]


def _build(n: int) -> tuple[str, dict[str, Any]]:
    arts = {role: {"path": f"firmware.{role}", "sha256": _sha(f"img{n}{role}")}
            for role in ("elf", "hex", "bin", "map")}
    record = {
        "schema": 1, "hil_version": "0.1.0", "board": "nucleo-f4",
        "board_file": "boards/nucleo-f4.yaml", "board_sha256": _sha("board"),
        "app": f"app{n % 7}", "app_dir": f"firmware_examples/app{n % 7}", "app_version": "1.0.0",
        "toolchain": TOOLCHAIN_RECORDS[(n // 10 + n % 10) % len(TOOLCHAINS)],
        "flags": {"cflags": ["-Os", "-Wall", "-Wextra", "-Werror"], "ldflags": ["-nostdlib"]},
        "linker_script": {"path": "firmware.ld", "sha256": _sha(f"ld{n % 3}")},
        "sources": [{"path": f"src/f{k}.c", "sha256": _sha(f"src{n}{k}")} for k in range(4)],
        "artifacts": arts,
        "regions": [{"name": "FLASH", "kind": "flash", "origin": 134217728, "length": 524288,
                     "used": 4096 + n % 9000}],
        "git": {"commit": _sha(f"c{n // 10}")[:40], "dirty": False},
        "host": "bench", "reproducible_checked": False,
    }
    payload = {"build": record, "out_dir": f"build/nucleo-f4/app{n % 7}",
               "provenance": {"statement": "provenance.intoto.json",
                              "statement_sha256": _sha(f"st{n}"), "sbom": "sbom.cdx.json",
                              "sbom_sha256": _sha(f"sb{n}"), "envelope": None}}
    return arts["hex"]["sha256"], payload


def synthetic(count: int, start: int = 0) -> Iterator[tuple[str, str, dict[str, Any], None]]:
    """``count`` records in the mix described in the module doc."""
    rng = random.Random(start)
    images: list[str] = []
    for n in range(start, start + count):
        slot = n % 10
        if slot < 2 or not images:
            image, payload = _build(n)
            images.append(image)
            yield ("build", image, payload, None)
        elif slot < 4:
            image = images[-1 - rng.randrange(min(len(images), 50))]
            yield ("flash", image, {"board": "nucleo-f4", "rack_id": rng.choice(RACKS),
                                    "probe": f"P{n % 50}", "chip_id": "0x00000413",
                                    "verified": True, "erased": 2, "programmed": 8192,
                                    "user": "ci", "ok": True, "error": None}, None)
        else:
            image = images[-1 - rng.randrange(min(len(images), 50))]
            hw = slot < 6
            yield ("test", image, {"board": "nucleo-f4", "rack_id": rng.choice(RACKS) if hw
                                   else None, "executor": "hardware" if hw else "qemu",
                                   "passed": 12, "failed": n % 13 == 0, "skipped": 1,
                                   "errors": 0, "junit": f"out/{n}.xml", "toolchain": "gcc",
                                   "user": "ci"}, None)


def fill(store: Store, target: int) -> float:
    """Append synthetic records up to ``target``; returns records/s of batched appends."""
    have = store.count()
    if have >= target:
        return 0.0
    start = time.perf_counter()
    gen = synthetic(target - have, have)
    done = 0
    while True:
        batch = list(itertools.islice(gen, BATCH))
        if not batch:
            break
        store.append_many(batch)
        done += len(batch)
        print(f"\r  filling: {have + done}/{target}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return done / (time.perf_counter() - start)


def timed(fn: Callable[[], Any], runs: int) -> tuple[float, float]:
    """Median and max of ``runs`` calls, in milliseconds (after one warm-up call)."""
    fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times), max(times)


def bench_size(store: Store, size: int, runs: int, verify: bool) -> None:
    rate = fill(store, size)
    if rate and isinstance(store, PostgresStore):
        store.conn.execute("VACUUM ANALYZE")  # what autovacuum does soon after a bulk load
    n = store.count()
    rng = random.Random(1)
    image_shas = [_build(i)[0] for i in rng.sample(range(0, n, 10), min(runs, n // 10))]
    tc_names = ["gcc", "@".join(TOOLCHAINS[8])]
    tool_sha = TOOLCHAIN_RECORDS[3]["tools"]["as"]["sha256"]
    it = iter(image_shas * 2)
    med, worst = timed(lambda: queries.image(store, next(it)), len(image_shas) - 1)
    print(f"{n:>9} records  image query            median {med:7.2f} ms  max {worst:7.2f} ms")
    for name in tc_names:
        med, worst = timed(functools.partial(queries.toolchain, store, name, limit=200), 10)
        print(f"{'':>9}          toolchain {name:<13} median {med:7.2f} ms  max {worst:7.2f} ms")
    med, worst = timed(lambda: queries.toolchain(store, tool_sha, limit=200), 10)
    print(f"{'':>9}          toolchain by tool sha  median {med:7.2f} ms  max {worst:7.2f} ms")
    med, worst = timed(lambda: queries.board(store, RACKS[7], limit=200), 10)
    print(f"{'':>9}          board query            median {med:7.2f} ms  max {worst:7.2f} ms")
    if rate:
        print(f"{'':>9}          batched append         {rate:9.0f} records/s "
              f"({BATCH} per transaction)")
    if verify:
        t = time.perf_counter()
        result = queries.verify(store)
        print(f"{'':>9}          verify whole chain     {time.perf_counter() - t:7.1f} s "
              f"({'ok' if result.ok else 'FAILED'})")


def single_appends(store: Store, count: int) -> None:
    items = list(synthetic(count, 10**9))
    t = time.perf_counter()
    for kind, image, payload, _ in items:
        store.append(kind, image, payload)
    elapsed = time.perf_counter() - t
    print(f"single appends (one transaction each, durable): {count / elapsed:8.0f} records/s, "
          f"{elapsed / count * 1000:.2f} ms each")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--db", help="postgresql:// URL of an empty database (default: SQLite "
                                     "files in a temp dir)")
    parser.add_argument("--keep", type=Path, help="directory for the SQLite stores; reused "
                                                  "between runs")
    parser.add_argument("--runs", type=int, default=50, help="queries timed per figure")
    parser.add_argument("--no-verify", action="store_true", help="skip timing verify")
    parser.add_argument("--appends", type=int, default=300, help="single appends to time")
    args = parser.parse_args()

    tmp = None
    if args.db:
        def location_for(size: int) -> str:
            return str(args.db)  # one growing store
    else:
        base = args.keep or Path(tmp := tempfile.mkdtemp(prefix="hil-audit-bench-"))
        base.mkdir(parents=True, exist_ok=True)
        def location_for(size: int) -> str:
            return str(base / f"audit-{size}.sqlite")
    try:
        for size in sorted(args.sizes):
            with open_store(location_for(size)) as store:
                bench_size(store, size, args.runs, not args.no_verify)
        with open_store(location_for(sorted(args.sizes)[-1])) as store:
            single_appends(store, args.appends)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
