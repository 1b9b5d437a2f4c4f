"""--size-baseline and --size-threshold, shared by hil build, hil test and hil size."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from hil.errors import UsageError
from hil.settings import current

if TYPE_CHECKING:
    from hil.size import FootprintError, Threshold


def threshold_arg(text: str) -> Threshold:
    """An argparse ``type`` for --size-threshold (a usage error naming the option)."""
    from hil.size import parse_threshold

    try:
        return parse_threshold(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


threshold_arg.__name__ = "size threshold"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--size-baseline", type=str, default=None, metavar="FILE",
                   help="compare each image's per-region use with this baseline ('hil size "
                   "--save FILE'), or with the builds of git:REF the audit store holds; "
                   "print the deltas and the symbols that grew most (default: the "
                   "project's [size] baseline)")
    p.add_argument("--size-threshold", type=threshold_arg, default=None, metavar="SIZE",
                   help="fail (exit 5) when a region grew by more than SIZE against the "
                   "baseline: bytes (1024, 1K), a percent of the baseline use (2%%), or per "
                   "region (flash=1K,ram=512) (default: the project's [size] threshold; "
                   "without one, deltas are only printed)")


def guard(args: argparse.Namespace, results: Sequence[object]) -> FootprintError | None:
    """Compare ``results`` (BuildResults) with the baseline, if one is set: print the report
    on stderr; return the FootprintError to raise (None when within the threshold)."""
    from hil import size

    settings = current()
    baseline = args.size_baseline or settings.size_baseline
    threshold = args.size_threshold
    if threshold is None and settings.size_threshold is not None:
        threshold = size.parse_threshold(settings.size_threshold)  # checked when loaded
    if baseline is None:
        if args.size_threshold is not None:
            raise UsageError("--size-threshold needs a baseline",
                             hint="pass --size-baseline FILE, or set [size] baseline in "
                             "the project file")
        return None
    text = str(baseline)
    if text.startswith("git:"):
        base = size.from_audit(text[4:], settings.root)
    else:
        base = size.load(Path(baseline))
    deltas = size.compare(base, [size.footprint_of(r) for r in results], threshold)
    where = " (its stored build records: regions only)" if text.startswith("git:") else ""
    print(f"hil: footprint against {baseline}{where}:", file=sys.stderr)
    for line in size.report_lines(deltas):
        print(f"  {line}", file=sys.stderr)
    try:
        size.check(deltas, str(baseline))
    except size.FootprintError as exc:
        return exc
    return None
