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
from hil.gate.scheduler import CellResult, Limits, first_choice, merged, run_cells, work_dir
from hil.gate.verdict import Policy, gate_outcomes, print_matrix
from hil.image import Image
from hil.settings import current
from hil.testrun import BoardResult, Plan, recovery_words


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
    cells = gp.make_plan(pairs, catalog, rack, present, filters, _unhealthy(rack, on))
    weights = _durations() if args.shard or any(c.runnable for c in cells) else {}
    shard = gp.parse_shard(args.shard) if args.shard else (1, 1)
    if not args.dry_run and all(c.reason.startswith(gp.FILTERED) for c in cells):
        raise UsageError("nothing to test: every cell of the plan is filtered out",
                         hint="check --app, --tag and --board ('hil test --dry-run' lists "
                         "the plan)")
    if args.shard:
        cells = gp.shard(cells, *shard, weights)
    if args.dry_run:
        _print_plan(cells, shard, args.json)
        return 0
    if args.shard and all(c.reason.startswith(gp.FILTERED) for c in cells):
        print(f"hil: shard {args.shard} has no cell of the plan to run or report (the plan "
              "has fewer cells than shards)", file=sys.stderr)
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
            for rack_id, why in cell.unhealthy:
                print(f"hil: {cell.id}: skipping unhealthy {rack_id} ({why}; 'hil rack "
                      f"reset {rack_id}' returns it)", file=sys.stderr, flush=True)
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
    if results:
        print_matrix(results)
    finals = [merged(r) for r in results if r.attempts]
    for r, final in zip([r for r in results if r.attempts], finals, strict=True):
        for case in (c for c in final.suite.cases if c.flaky):  # each flaky test, and where
            where = ", ".join(a.where for a in case.reruns)
            print(f"hil: {r.cell.id}: flaky: {case.classname}::{case.name} failed on "
                  f"{where}, then passed", file=sys.stderr)
    if args.junit:
        from hil import junit

        # per cell: the attempts that ended in an infrastructure failure (each its own
        # suite, its errors marked as retried), then the last attempt, its cases carrying
        # earlier test failures as Surefire rerun elements; one suite per rack entry
        suites = [s for r in results for a in _retried_infra(r) for s in junit.split(a.suite)]
        suites += [s for f in finals for s in junit.split(f.suite)]
        # cells that did not run (or whose image did not build): an error case each, so the
        # JUnit files of all shards together name every cell of the plan once
        suites += [_unrun_suite(r) for r in results if not r.attempts
                   and not r.cell.reason.startswith(gp.FILTERED)]
        junit.write(args.junit, suites)
        print(f"hil: JUnit verdict written to {args.junit}", file=sys.stderr)
    if args.report:
        from hil import runreport

        cells = runreport.cells_from_results(finals)
        for cell, r in zip(cells, [r for r in results if r.attempts], strict=True):
            # every attempt's recoveries, as the matrix says (a final leaves out attempts
            # lost to infrastructure)
            cell.recovered = recovery_words(r.recoveries)
        runreport.write(args.report, cells, title="hil test: the project's test plan")
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


def _unhealthy(rack, on: str) -> dict[str, str]:
    """Rack id -> reason, for the rack's entries out of service (the lease store's health);
    none asked with --on qemu or an empty rack."""
    if on == "qemu" or not rack:
        return {}
    from hil.rack import lease_store
    from hil.rack.inventory import load_rack

    with lease_store(load_rack()) as store:
        health = store.health()
    ids = {e.id for e in rack}
    return {i: h.unhealthy_reason for i, h in health.items()
            if i in ids and h.unhealthy_reason is not None}


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


def _unrun_suite(result: CellResult):
    """The JUnit suite of a cell without a run: one error case, ``not run`` with the plan's
    reason, or ``build`` with the build error."""
    from hil import junit

    cell = result.cell
    if result.error is not None:
        case = junit.Case("build", f"{cell.board.name}.{cell.app.name}", "error",
                          message=str(result.error).splitlines()[0], text=str(result.error))
    else:
        case = junit.Case("not run", f"{cell.board.name}.{cell.app.name}", "error",
                          message=f"not run: {cell.reason}",
                          text=f"{cell.id} was not run: {cell.reason}")
    return junit.Suite(f"{cell.board.name}/{cell.app.name}", [case], junit.suite_properties(
        board=cell.board.name, executor=cell.kind or "none", image_sha256=None,
        toolchain=None, app=cell.app.name, harness=cell.harness))


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
