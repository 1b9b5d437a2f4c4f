#!/usr/bin/env python3
"""Rack benchmark: job scheduling over virtual boards, and lease latency under contention.

Prints, in one run:
  1. N jobs over K virtual nucleo-f4 boards (each job: lease -> flash through pyOCD and the
     simulated probe -> boot QEMU from flash -> 50 shell round trips -> release), the
     makespan against the ideal ceil(N/K) x the single-job time (ratio; goal <= 1.1);
  2. lease acquire latency (median, p99) with 32 contending processes, on SQLite and on
     PostgreSQL (when the server binaries are installed).
Nothing is asserted: the figures are printed.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def write_rack(path: Path, boards: int) -> None:
    lines = ["schema: 1", "boards:"]
    for i in range(boards):
        lines += [f"  - id: bench-{i}", "    board: nucleo-f4", f"    probe: hilsim:bench-{i}",
                  "    emulator: qemu"]
    path.write_text("\n".join(lines) + "\n")


def job(rack_path: str, hex_path: str, elf_path: str, work: str, start_at: float) -> float:
    """One CI job in a fresh process; returns the time it finished (imports done before
    the common start, so every job pays the same start-up as a real one does once)."""
    import pyocd.core.helpers  # noqa: F401  (heavy import, before the clock starts)

    from hil.boards import load_board
    from hil.executors.virtual import VirtualBoardExecutor
    from hil.image import Image
    from hil.rack import lease_board, load_rack

    while time.time() < start_at:
        time.sleep(0.001)
    board = load_board("nucleo-f4")
    rack = load_rack(Path(rack_path))
    lease, entry = lease_board(rack, "nucleo-f4", wait=None, ttl=60)
    with lease:
        image = Image(hex=Path(hex_path), elf=Path(elf_path))
        with VirtualBoardExecutor(board, entry, work_dir=Path(work) / f"{os.getpid()}") as ex:
            console = ex.start(image)
            console.expect("READY", 10)
            for _ in range(50):
                console.command("ping", 5)
    return time.time()


def lease_log(rack_path: Path) -> list[tuple]:
    from hil.rack import lease_store, load_rack

    with lease_store(load_rack(rack_path)) as store:
        return store.lease_log()


def handover_gaps(rows: list[tuple]) -> list[float]:
    """Seconds from each release to the next acquire of the same board in one run's lease
    log (a queued job should get the board at once, not at its next poll)."""
    gaps, released = [], {}
    for _seq, rack_id, _token, event, _ticket, at in rows:
        if event == "release":
            released[rack_id] = at
        elif event == "acquire" and rack_id in released:
            gaps.append(at - released.pop(rack_id))
    return gaps


def _contender(url: str, boards: int, rounds: int, start_at: float, out) -> None:
    from hil.rack.leases import open_store

    store = open_store(url)
    ids = [f"b{i}" for i in range(boards)]
    while time.time() < start_at:
        time.sleep(0.001)
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        info = store.acquire(ids, wait=None, ttl=60)
        times.append(time.perf_counter() - t0)
        store.release(info.token)
    store.close()
    out.put(times)


def lease_latency(url: str, contenders: int = 32, boards: int = 32, rounds: int = 20):
    from hil.rack.leases import open_store

    open_store(url).close()
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    start_at = time.time() + 3.0
    procs = [ctx.Process(target=_contender, args=(url, boards, rounds, start_at, queue))
             for _ in range(contenders)]
    for p in procs:
        p.start()
    samples = []
    for _ in procs:
        samples += queue.get(timeout=600)
    for p in procs:
        p.join()
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", "-n", type=int, default=8)
    parser.add_argument("--boards", "-k", type=int, default=2)
    parser.add_argument("--rounds", "-r", type=int, default=5,
                        help="baseline and contended runs, alternating (default 5)")
    args = parser.parse_args()

    from hil.boards import load_board
    from hil.build import build

    with tempfile.TemporaryDirectory(prefix="hil-bench-rack-") as tmp:
        tmp_path = Path(tmp)
        os.environ["HIL_STATE_DIR"] = str(tmp_path / "state")
        os.environ["HIL_CACHE_DIR"] = str(tmp_path / "cache")
        image = build(load_board("nucleo-f4"), "shell", out=tmp_path / "img")
        rack = tmp_path / "rack.yaml"
        write_rack(rack, args.boards)
        work = tmp_path / "work"

        ctx = mp.get_context("spawn")

        def run(n: int) -> float:
            with ctx.Pool(n) as pool:
                start_at = time.time() + 5.0
                ends = pool.starmap(job, [(str(rack), str(image.hex), str(image.elf),
                                           str(work), start_at) for _ in range(n)])
            return max(ends) - start_at

        # rounds alternate the baseline and the contended run, so a slow spell of the
        # machine hits both; the figures are medians over the rounds
        singles, makespans, gaps = [], [], []
        for _ in range(args.rounds):
            singles.append(run(1))
            seen = len(lease_log(rack))
            makespans.append(run(args.jobs))
            gaps += handover_gaps(lease_log(rack)[seen:])
        single, makespan = statistics.median(singles), statistics.median(makespans)
        ideal = math.ceil(args.jobs / args.boards) * single
        ratios = sorted(m / (math.ceil(args.jobs / args.boards) * s)
                        for s, m in zip(singles, makespans, strict=True))
        print(f"{args.jobs} jobs over {args.boards} virtual boards "
              f"(lease, pyOCD flash, QEMU boot, 50 shell round trips, release), "
              f"median of {args.rounds} rounds")
        print(f"  single job:            {single:7.2f} s")
        print(f"  makespan:              {makespan:7.2f} s")
        print(f"  ideal ceil(N/K) x job: {ideal:7.2f} s")
        print(f"  ratio makespan/ideal:  {makespan / ideal:7.2f}   (goal <= 1.1; rounds: "
              f"{', '.join(f'{r:.2f}' for r in ratios)})")
        if gaps:
            print(f"  hand-over, a release to the next job's lease on that board: median "
                  f"{statistics.median(gaps) * 1000:.1f} ms, max {max(gaps) * 1000:.1f} ms "
                  f"({len(gaps)} hand-overs)")

        med, p99 = lease_latency(str(tmp_path / "leases.sqlite"))
        print(f"lease acquire latency, 32 contenders, SQLite:     median {med * 1000:6.1f} ms, "
              f"p99 {p99 * 1000:6.1f} ms")
        try:
            from pgserver import PgServer, pg_available
        except ImportError:
            PgServer = None
        reason = pg_available() if PgServer else "tests/pgserver.py not found"
        if reason:
            print(f"lease acquire latency, PostgreSQL: skipped ({reason})")
        else:
            with PgServer() as server:
                med, p99 = lease_latency(server.create_database())
            print(f"lease acquire latency, 32 contenders, PostgreSQL: median "
                  f"{med * 1000:6.1f} ms, p99 {p99 * 1000:6.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
