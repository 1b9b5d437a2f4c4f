"""Argparse types shared by the subcommands: every number option is range-checked here."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from hil import limits


def number(limit: limits.Limit) -> Callable[[str], float | int | None]:
    """An argparse ``type`` reading a number within ``limit`` (a usage error, exit 2, else)."""

    def parse(text: str) -> float | int | None:
        try:
            return limit.parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = limit.what  # argparse names the type in some messages
    return parse


ttl = number(limits.LEASE_TTL)
wait = number(limits.LEASE_WAIT)
timeout = number(limits.TIMEOUT)
frequency = number(limits.FREQUENCY)
jobs = number(limits.JOBS)
retries = number(limits.RETRIES)
workers = number(limits.WORKERS)
records = number(limits.RECORDS)
listen_port = number(limits.LISTEN_PORT)
idle_checks = number(limits.IDLE_CHECKS)
