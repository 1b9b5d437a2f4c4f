#!/usr/bin/env python3
"""Build benchmark: hil against a plain Makefile running the same commands.

Prints, in one run:
  1. a clean build of the whole matrix (every example x every board x GCC and Clang) with
     `hil build --all`, against `make -j N` running the same compile, link and objcopy
     commands (ratio; goal <= 1.15);
  2. a rebuild after deleting the output directory (served by hil's cache) against the
     clean build (ratio; goal <= 0.10).
Each figure is the best of --repeat runs. Nothing is asserted: the figures are printed.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hil.app import example_apps
from hil.boards import BoardCatalog
from hil.build import BuildRequest, plan

ROOT = Path(__file__).resolve().parents[1]

HIL = [sys.executable, "-m", "hil"]


def makefile_for(plans, work: Path) -> str:
    """A Makefile with the exact compile, link and objcopy commands hil runs."""
    rules, images = [], []
    for i, p in enumerate(plans):
        out = work / f"img{i}"
        objs = []
        for j, o in enumerate(p.objects):
            obj = out / f"{j}.o"
            objs.append(str(obj))
            cmd = [p.toolchain.cc, *p.cflags, *p.prefix_maps, "-c", str(o.source), "-o", str(obj)]
            rules.append(f"{obj}:\n\t@mkdir -p {out}\n\tcd {p.cwd} && {shlex.join(cmd)}\n")
        script = out / "firmware.ld"
        out.mkdir(parents=True, exist_ok=True)
        script.write_text(p.linker_script)  # rendering is not what is compared
        elf = out / "firmware.elf"
        link = [p.toolchain.cc, *p.ldflags, "-T", str(script), f"-Wl,-Map={out}/firmware.map",
                "-o", str(elf), *objs, *p.toolchain.link_libs]
        oc = p.toolchain.objcopy
        rules.append(
            f"{out}/firmware.hex: {' '.join(objs)}\n"
            f"\t@mkdir -p {out}\n"
            f"\tcd {p.cwd} && {shlex.join(link)}\n"
            f"\t{oc} -O ihex {elf} {out}/firmware.hex\n"
            f"\t{oc} -O binary {elf} {out}/firmware.bin\n")
        images.append(f"{out}/firmware.hex")
    return f"all: {' '.join(images)}\n\n" + "\n".join(rules)


def timed(cmd, env=None, cwd=None) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, cwd=cwd, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()

    boards = BoardCatalog().all()
    apps = example_apps()
    requests = [BuildRequest(b, a, tc) for b in boards for a in apps for tc in ("gcc", "clang")
                if not a.boards or b.name in a.boards]
    with tempfile.TemporaryDirectory(prefix="hil-bench-") as tmp:
        tmp_path = Path(tmp)
        plans = [plan(r, tmp_path / "plan-cache") for r in requests]
        objects = sum(len(p.objects) for p in plans)
        print(f"matrix: {len(boards)} boards x {len(apps)} apps x 2 toolchains = "
              f"{len(plans)} images, {objects} compile commands, -j {args.jobs}")

        make_times, hil_times, rebuild_times = [], [], []
        for n in range(args.repeat):
            work = tmp_path / f"make{n}"
            work.mkdir()
            (work / "Makefile").write_text(makefile_for(plans, work))
            make_times.append(timed(["make", "-s", "-j", str(args.jobs), "-f",
                                     str(work / "Makefile")]))

            env = dict(os.environ, HIL_CACHE_DIR=str(tmp_path / f"cache{n}"),
                       HIL_BUILD_DIR=str(tmp_path / f"build{n}"),
                       HIL_STATE_DIR=str(tmp_path / f"state{n}"))
            cmd = [*HIL, "build", "--all", "-t", "gcc", "-t", "clang", "-j", str(args.jobs)]
            hil_times.append(timed(cmd, env=env, cwd=ROOT))
            shutil.rmtree(tmp_path / f"build{n}")
            rebuild_times.append(timed(cmd, env=env, cwd=ROOT))

    make_t, hil_t, re_t = min(make_times), min(hil_times), min(rebuild_times)
    print(f"clean build, plain Makefile (same commands): {make_t:7.2f} s")
    print(f"clean build, hil build --all:                 {hil_t:7.2f} s")
    print(f"  ratio hil / Makefile:        {hil_t / make_t:5.2f}   (goal <= 1.15)")
    print(f"rebuild after deleting build/: {re_t:7.2f} s")
    print(f"  ratio rebuild / clean build: {re_t / hil_t:5.2f}   (goal <= 0.10)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
