"""hil test without APP (or without --board): the project's test plan, run as one gate."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from hil.boards import BoardCatalog
from hil.cli._exit import exit_code_for
from hil.errors import HilError, UsageError
from hil.executors import Choice
from hil.gate import plan as gp
from hil.gate.scheduler import CellResult, Limits, first_choice, run_cells, work_dir
from hil.gate.verdict import Policy, gate_outcomes, print_matrix
from hil.image import Image
from hil.settings import current
from hil.testrun import BoardResult, Plan


def run_plan(args: argparse.Namespace, *, harness: str, on: str, run_root: Path,
             toolchain: str) -> int:
    from hil.cli.test import _apps_to_test, _expect, _harness_of, _suite, print_summary

    settings = current()
    catalog = BoardCatalog().all()
    apps = _apps_to_test(args.app, args, harness, args.suite)
    pairs = [(a, _harness_of(a, args, harness)) for a in apps]
    filters = gp.Filters(apps=tuple(args.apps), tags=tuple(args.tags),
                         boards=tuple(args.board), on=on,
                         require_hardware=args.require_hardware,
                         hardware_boards=settings.gate_require_hardware)
    rack = _rack_entries()
    present = _present(catalog, rack, on)
    cells = gp.make_plan(pairs, catalog, rack, present, filters)
    weights = _durations() if args.shard or any(c.runnable for c in cells) else {}
    shard = gp.parse_shard(args.shard) if args.shard else (1, 1)
    if args.shard:
        cells = gp.shard(cells, *shard, weights)
    if args.dry_run:
        _print_plan(cells, shard, args.json)
        return 0
    if not any(c.runnable for c in cells) and \
            all(c.reason.startswith(gp.FILTERED) for c in cells):
        raise UsageError("nothing to test: every cell of the plan is filtered out",
                         hint="check --app, --tag and --board ('hil test --dry-run' lists "
                         "the plan)")
    if args.junit is not None or args.report is not None:
        from hil import junit

        if args.junit is not None:
            junit.check_target(args.junit)
        if args.report is not None:
            junit.check_target(args.report, "--report")
    for cell in cells:  # where each cell runs and why, before anything is built
        if cell.runnable:
            print(f"hil: {cell.app.name} on {first_choice(cell).describe(cell.board)}",
                  file=sys.stderr, flush=True)
        elif not cell.reason.startswith(gp.FILTERED):
            print(f"hil: {cell.id}: not run: {cell.reason}", file=sys.stderr, flush=True)
    single = sum(1 for c in cells if c.runnable) == 1

    def build(cell: gp.Cell) -> Image:
        from hil.build import build as build_app

        print(f"hil: building {cell.app.name} for {cell.board.name} ({toolchain})",
              file=sys.stderr, flush=True)
        image = Image.from_build(build_app(cell.board, cell.app, toolchain=toolchain))
        return image.copy_to(work_dir(run_root, cell, 1) / "image")

    from hil.cli.test import debug_policy

    debug = debug_policy(args)

    def plan_for(cell: gp.Cell, image: Image, choice: Choice, attempt: int) -> Plan:
        expect, ordered, source = _expect(cell.app, args)
        timeout = args.timeout if args.timeout is not None else \
            cell.app.needs.timeout or settings.test_timeout
        return Plan(board=cell.board, image=image, choice=choice, harness=cell.harness,
                    app=cell.app.name, suite=_suite(cell.app, cell.harness, args.suite),
                    work_dir=work_dir(run_root, cell, attempt), on="qemu" if
                    cell.kind == gp.QEMU else "auto", timeout=timeout, workers=args.workers,
                    stream=single, expect=expect, ordered=ordered, expect_source=source,
                    rack_entries=tuple(e.id for e in choice.entries),
                    debug=debug)

    limits = Limits(jobs=args.jobs, infra_retries=args.infra_retries,
                    retry_failed=args.retry_failed)
    results = run_cells(cells, build, plan_for, limits, weights)
    return _verdict(args, results, run_root, print_summary)


def _verdict(args, results: list[CellResult], run_root: Path, print_summary) -> int:
    attempts = [a for r in results for a in r.attempts]
    if attempts:
        print_summary(attempts, all_cases=False)
    for r in results:
        if r.error is not None:
            print(f"hil: {r.cell.id}: {r.error}", file=sys.stderr)
    print_matrix(results)
    finals = [_with_reruns(r) for r in results if r.attempts]
    if args.junit:
        from hil import junit

        # per cell: the attempts that ended in an infrastructure failure (each its own
        # suite, its errors marked as retried), then the last attempt, its cases carrying
        # earlier test failures as Surefire rerun elements; one suite per rack entry
        suites = [s for r in results for a in _retried_infra(r) for s in junit.split(a.suite)]
        suites += [s for f in finals for s in junit.split(f.suite)]
        junit.write(args.junit, suites)
        print(f"hil: JUnit verdict written to {args.junit}", file=sys.stderr)
    if args.report:
        from hil import runreport

        runreport.write(args.report, runreport.cells_from_results(finals),
                        title="hil test: the project's test plan")
        print(f"hil: run report written to {args.report}", file=sys.stderr)
    print(f"hil: transcripts and logs in {run_root}", file=sys.stderr)
    cancelled = next((a.cancelled for a in attempts if a.cancelled is not None), None)
    if cancelled is not None:
        print(f"hil: {cancelled}", file=sys.stderr)
    settings = current()
    policy = Policy(settings.gate_require_hardware, settings.gate_allow_flaky)
    return exit_code_for(gate_outcomes(results, policy))


def _rack_entries():
    from hil.rack.inventory import load_rack

    return load_rack().entries


def _present(catalog, rack, on: str) -> dict[str, list]:
    """Board name -> its rack entries with hardware present (asked only for boards the rack
    lists real hardware for, and not with --on qemu)."""
    if on == "qemu":
        return {}
    from hil.executors.hardware import present_hardware

    names = {e.board for e in rack if not e.is_virtual}
    return {b.name: present_hardware(b)[0] for b in catalog if b.name in names}


def _durations() -> dict[str, float]:
    """The last known duration of each cell, from the audit store's test records."""
    from hil.audit.store import open_store

    try:
        with open_store() as store:
            records = store.since(None, ("test",), limit=5000)
    except HilError:
        return {}
    return gp.last_durations(r.payload for r in records)


def _print_plan(cells: list[gp.Cell], shard: tuple[int, int], as_json: bool) -> None:
    if as_json:
        json.dump({"shard": f"{shard[0]}/{shard[1]}", "cells": [c.as_dict() for c in cells]},
                  sys.stdout, indent=2)
        print()
        return
    from hil.ui import table

    table(["cell", "harness", "runs on"], [[c.id, c.harness, c.runs_on] for c in cells])


def _with_reruns(result: CellResult) -> BoardResult:
    """The cell's last attempt, each of its cases carrying the failures of the same case in
    earlier test-failure attempts (on which board) as reruns: failed, then passed is flaky."""
    from hil import junit
    from hil.outcome import OutcomeKind

    last = result.attempts[-1]
    earlier = [a for a in result.attempts[:-1]
               if a.outcome.kind != OutcomeKind.INFRASTRUCTURE]
    for case in last.suite.cases:
        case.reruns = [
            junit.Attempt(status=old.status, message=old.message, text=old.text,
                          seconds=old.seconds, board=attempt.plan.board.name,
                          rack_id=attempt.extra.get("rack_id"),
                          executor=attempt.kind or attempt.plan.choice.kind,
                          output=old.output)
            for attempt in earlier for old in attempt.suite.cases
            if (old.name, old.classname) == (case.name, case.classname)
            and old.status in ("failed", "error")]
    return last


def _retried_infra(result: CellResult) -> list[BoardResult]:
    """Earlier attempts that ended in an infrastructure failure: kept in the JUnit file
    (where and why), their failed cases marked skipped, since the cell was retried."""
    from hil.outcome import OutcomeKind

    kept = []
    last = result.attempts[-1] if result.attempts else None
    for attempt in result.attempts[:-1]:
        if attempt.outcome.kind != OutcomeKind.INFRASTRUCTURE or last is None:
            continue
        where = last.extra.get("rack_id") or last.plan.board.name
        for case in attempt.suite.cases:
            if case.status in ("failed", "error"):
                case.message = f"infrastructure failure, retried on {where}: {case.message}"
                case.status = "skipped"
        kept.append(attempt)
    return kept
