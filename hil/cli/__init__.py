"""The ``hil`` command: one module per subcommand; the only place errors become exit codes.

A subcommand module in this package defines ``NAME``, ``HELP``, ``add_arguments(parser)``
and ``run(args) -> int``. ``run`` converts the argparse namespace into typed values and calls
library code; no namespace is passed below this layer. Modules are discovered by name, so
adding a subcommand is adding a file.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import pkgutil
import sys
import traceback
from pathlib import Path
from types import ModuleType

from hil.errors import Cancelled, ExitCode, HilError, UsageError
from hil.settings import PROJECT_FILE, Settings, use
from hil.settings import load as settings_load

EPILOG = """\
exit codes:
   0  success                         10  no probe found
   1  a test failed                   11  probe busy or lost mid-operation
   2  usage or configuration error    12  wrong chip on the probe
   3  infrastructure failure          13  flash erase/program failed
      (emulator died, console lost)   14  read-back verify mismatch
   4  hardware required, not present  20  timed out waiting for a lease
   5  build failed / image too big    21  audit verification failed
   6  toolchain missing              129  cancelled by SIGHUP
                                     130  interrupted (Ctrl-C, SIGINT)
                                     143  cancelled by SIGTERM (CI job cancelled)

project:
  hil looks for hil.toml (or pyproject.toml with [tool.hil]) in the current directory and
  its parents; that directory is the project root. `hil init` makes one, `hil config` shows
  the resolved settings and where each came from (default < project file < environment <
  option).

environment (overrides the project file):
  HIL_BOARDS_PATH  extra board directories (':'-separated), after the project's boards
  HIL_CACHE_DIR    build cache (default: $XDG_CACHE_HOME/hil or ~/.cache/hil)
  HIL_BUILD_DIR    output root of images (default: build/ in the project)
  HIL_STATE_DIR    state: audit store, leases, simulated flash, logs (default: .hil/)
  HIL_RACK         rack file (default: rack.yaml in the project)
  HIL_AUDIT_DB, HIL_AUDIT_KEY, HIL_LEASE_DB, HIL_LEASE_WAIT, HIL_LEASE: see README
"""


def _subcommand_modules(only: str | None = None) -> list[ModuleType]:
    """Every subcommand module, or only the one named ``only`` when there is one: a run of
    one command does not pay for importing the others (their libraries: pyOCD, the audit
    store, the rack)."""
    infos = [m for m in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name)
             if not m.name.startswith("_")]
    if only is not None and any(m.name == only for m in infos):
        infos = [m for m in infos if m.name == only]
    modules = []
    for info in infos:
        try:
            module = importlib.import_module(f"{__name__}.{info.name}")
        # one broken subcommand must not take the others down
        except Exception as exc:  # noqa: BLE001
            modules.append(_unavailable(info.name, exc))
            continue
        if hasattr(module, "NAME") and hasattr(module, "run"):
            modules.append(module)
    return modules


def _unavailable(name: str, exc: Exception) -> ModuleType:
    """A stand-in subcommand that reports why the real one could not be loaded."""
    module = ModuleType(name)
    module.NAME = name  # type: ignore[attr-defined]
    module.HELP = f"(unavailable: {type(exc).__name__})"  # type: ignore[attr-defined]

    def add_arguments(p: argparse.ArgumentParser) -> None:
        p.add_argument("rest", nargs=argparse.REMAINDER)

    def run(args: argparse.Namespace) -> int:
        raise HilError(f"'hil {name}' cannot be loaded: {type(exc).__name__}: {exc}",
                       hint="reinstall hil ('make test' or pip install -e .); "
                       "run with -v for details")

    module.add_arguments = add_arguments  # type: ignore[attr-defined]
    module.run = run  # type: ignore[attr-defined]
    return module


def _command_in(argv: list[str]) -> str | None:
    """The subcommand named in ``argv``: its first word that is neither an option nor the
    value of a global option."""
    values = iter(argv)
    for arg in values:
        if arg in _GLOBAL_VALUE_OPTIONS:
            next(values, None)
        elif not arg.startswith("-"):
            return arg
    return None


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser of every subcommand; given ``argv`` naming one, of that one only."""
    parser = argparse.ArgumentParser(
        prog="hil",
        description="Hardware-in-the-loop firmware pipeline: build bare-metal images, flash "
        "them over SWD, test them over their serial console (QEMU when no board is "
        "present), and keep an audit trail.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more log output; -v also shows tracebacks of errors")
    from hil import __version__

    parser.add_argument("--version", action="version", version=f"hil {__version__}")
    parser.add_argument("-C", dest="global_chdir", metavar="DIR", type=Path, default=None,
                        help="run as if hil was started in DIR (finds DIR's project)")
    parser.add_argument("--state-dir", dest="global_state_dir", metavar="DIR", type=Path,
                        default=None, help="state directory (overrides HIL_STATE_DIR and "
                        "the project file)")
    parser.add_argument("--build-root", dest="global_build_dir", metavar="DIR", type=Path,
                        default=None, help="output root of images (overrides HIL_BUILD_DIR "
                        "and the project file)")
    parser.add_argument("--cache-dir", dest="global_cache_dir", metavar="DIR", type=Path,
                        default=None, help="build cache (overrides HIL_CACHE_DIR)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    command = _command_in(argv) if argv is not None else None
    for module in _subcommand_modules(command):
        p = sub.add_parser(
            module.NAME,
            help=module.HELP,
            description=getattr(module, "DESCRIPTION", module.HELP),
            epilog=getattr(module, "EPILOG", EPILOG),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``hil`` console script; returns the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
    args, extra = parser.parse_known_args(argv)
    if extra:
        misplaced = [a for a in extra if a.split("=", 1)[0] in GLOBAL_OPTIONS]
        where = (f"; {misplaced[0].split('=', 1)[0]} is an option of hil itself: put it "
                 "before the command (hil --state-dir DIR test ...)") if misplaced else ""
        parser.error(f"unrecognized arguments: {' '.join(extra)}{where}")
    if not getattr(args, "_run", None):
        parser.print_help()
        return ExitCode.USAGE
    logging.basicConfig(
        level=logging.DEBUG if args.verbose > 1 else logging.INFO if args.verbose else
        logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    from hil import procs

    signals = procs.install()  # SIGINT/SIGTERM/SIGHUP unwind as Cancelled
    try:
        if args.global_chdir is not None:
            try:
                os.chdir(args.global_chdir)
            except OSError as exc:
                raise UsageError(f"-C {args.global_chdir}: {exc.strerror}") from exc
        settings = load_settings(args)
        if settings.project_file is None and args.command not in QUIET_WITHOUT_PROJECT:
            print(f"hil: no {PROJECT_FILE} in {settings.root} or above: using it as the "
                  "project root ('hil init' makes a project file)", file=sys.stderr)
        with use(settings):
            return int(args._run(args))
    except Cancelled as exc:
        print(f"hil: {exc}", file=sys.stderr)
        return exc.exit_code
    except HilError as exc:
        sig = procs.cancel_signal()
        if sig is not None:  # a failure while unwinding a cancel: the cancel is the news
            cancel = Cancelled(sig)
            print(f"hil: {cancel} ({exc.message})", file=sys.stderr)
            return cancel.exit_code
        if args.verbose:
            traceback.print_exc()
        print(f"hil: error: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        print("hil: interrupted", file=sys.stderr)
        return int(ExitCode.INTERRUPTED)
    except BrokenPipeError:
        # the reader went away (hil ... | head): stop quietly, as other tools do
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return int(ExitCode.OK)
    except OSError as exc:  # a file hil was told to write or read: name it, no traceback
        if args.verbose:
            traceback.print_exc()
        from hil.storage import describe_os_error

        message, hint = describe_os_error(exc)
        print(f"hil: error: {message}" + (f"\n  hint: {hint}" if hint else ""),
              file=sys.stderr)
        return int(ExitCode.USAGE)
    except Exception as exc:
        sig = procs.cancel_signal()
        if sig is None:
            raise  # a bug in hil: the traceback is the report
        # a library interrupted mid-operation by the cancel (pyOCD releasing a lock it
        # never took): the cancel is the news, not the library's confusion
        cancel = Cancelled(sig)
        print(f"hil: {cancel} ({type(exc).__name__}: {exc})", file=sys.stderr)
        return cancel.exit_code
    finally:
        procs.restore(signals)


QUIET_WITHOUT_PROJECT = ("init", "config", "doctor")
GLOBAL_OPTIONS = ("-C", "--state-dir", "--build-root", "--cache-dir", "-v", "--verbose")
_GLOBAL_VALUE_OPTIONS = ("-C", "--state-dir", "--build-root", "--cache-dir")


def load_settings(args: argparse.Namespace) -> Settings:
    """The settings of this run: defaults < project file < environment < global options."""
    settings = settings_load()
    settings = settings.override("option --state-dir", state_dir=args.global_state_dir)
    settings = settings.override("option --build-root", build_dir=args.global_build_dir)
    # a command's --rack FILE is the rack of the whole run: the simulated probes' boards and
    # faults, and the pytest child, read the same file
    rack = getattr(args, "scan_rack", None) or getattr(args, "rack", None)
    settings = settings.override("option --rack", rack=rack)
    return settings.override("option --cache-dir", cache_dir=args.global_cache_dir)


def console_main() -> None:  # pragma: no cover - thin wrapper for the console script
    sys.exit(main())
