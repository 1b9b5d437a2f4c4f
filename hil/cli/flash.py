"""hil flash: program a board (or a simulated one), verify by read-back, reset and run."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from hil.boards import Board, load_board
from hil.cli import _args
from hil.errors import AuditError, ConfigError, UsageError, is_infrastructure
from hil.flash import ERASE_MODES, make_flasher
from hil.flash.probe_id import ProbeId
from hil.flash.probes import ProbeChoice, select_probe
from hil.foreign import app_name, foreign_image, record_foreign, to_image
from hil.image import check_image_file
from hil.rack.inventory import Rack, RackEntry, load_rack
from hil.ui import Progress

NAME = "flash"
HELP = "flash an image to a board through its probe (pyOCD, OpenOCD, or a simulated probe)"
DESCRIPTION = """\
Flash an image to a board: pick the probe (--probe, else the board's rack entry, else the
only connected probe reporting this board; never a guess between two), check the image fits
the board's flash before touching the probe, connect, check the chip's device id is the
board's, erase and program only the sectors whose contents differ (pyOCD smart flash), read
the image back and compare, then reset and run.

APP is built first (as hil build would); --image flashes an existing .hex, .elf or .bin (a
.bin goes to the board's application start); --build-dir flashes the firmware ELF of a
Zephyr (zephyr/zephyr.elf), PlatformIO (.pio/build/<env>/firmware.elf) or CMake/Make build
directory. An image from outside is checked against the board (architecture, segments in
flash, Cortex-M stack pointer and reset vector) before any lease or probe, and recorded in
the audit trail as an external build.

Simulated probes: hilsim:<name> is a simulated SWD probe driven through pyOCD's real flash
path: pyOCD's flash algorithm (and its CRC analyzer) execute on an emulated Cortex-M core
against a register model of the chip's flash controller (STM32F4). Its flash persists under
HIL_STATE_DIR/simflash/<name>.bin. Its board comes from the rack entry naming it, else from
its state file, else from --board. A board file whose sectors are not the chip's fails with
an error naming the sector and memory[N].sectors. Inject faults with HIL_SIM_FAULTS (or
sim_faults in the rack entry), e.g.
  erase@0x08004000  program@0x08000400  corrupt@0x08000010  disconnect_after=5000
  device_id=0x413   slow=0.2  wrp=4 (sector 4 write-protected)  locked (flash key locked)
  (prefix an item with NAME: for one probe only)

examples:
  hil flash --board nucleo-f4 shell --probe hilsim:f4-a
  hil flash --board nucleo-f4 --image build/nucleo-f4/shell/firmware.hex --json
  hil flash --board hifive1-revb shell --probe jlink   (OpenOCD; untested on real hardware)
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("app", nargs="?", metavar="APP", help="app directory or example name to "
                   "build and flash")
    p.add_argument("--board", "-b", required=True, help="board name or alias")
    p.add_argument("--image", type=Path, help="flash this .hex/.elf/.bin instead of building")
    p.add_argument("--build-dir", type=Path, default=None, metavar="DIR",
                   help="flash the firmware of this Zephyr, PlatformIO, CMake or Make build "
                   "directory")
    p.add_argument("--probe", help="probe unique id (stlink:..., SERIAL, hilsim:NAME, "
                   "remote:HOST:PORT); see hil probes")
    p.add_argument("--rack", type=Path, default=None, help="rack file (default: HIL_RACK or "
                   "rack.yaml)")
    p.add_argument("--wait", type=_args.wait, default=_FROM_ENV, metavar="S",
                   help="seconds to wait for the board's lease when another job holds it "
                   "(default: HIL_LEASE_WAIT or 1800; 'forever' waits without end)")
    p.add_argument("--frequency", type=_args.frequency, default=None, metavar="HZ",
                   help="SWD clock, 1000 to 100000000 (default: the board file's)")
    p.add_argument("--connect-mode", choices=("halt", "pre-reset", "under-reset", "attach"),
                   default=None, help="override the board file's connect mode")
    p.add_argument("--reset-type", default=None,
                   choices=("hw", "sw", "sw_sysresetreq", "sw_vectreset", "sw_emulated"),
                   help="override the board file's reset type")
    p.add_argument("--erase", choices=ERASE_MODES, default="sector",
                   help="sector: only sectors that differ (default); chip: whole chip first; "
                   "auto: whichever pyOCD estimates faster")
    p.add_argument("--no-reset", action="store_true", help="leave the core halted after "
                   "flashing")
    p.add_argument("--toolchain", default="gcc", choices=("gcc", "clang"),
                   help="toolchain for building APP")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")


class _PhaseProgress:
    """Two-phase (erase, program) progress bar on a TTY, plain lines otherwise, on stderr."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.phase: str | None = None
        self.bar: Progress | None = None

    def __call__(self, phase: str, fraction: float) -> None:
        if phase != self.phase:
            if self.bar is not None:
                self.bar.update(1.0, self.phase or "")
                self.bar.done()
            self.phase = phase
            self.bar = Progress(self.label)
        assert self.bar is not None
        self.bar.update(fraction, phase)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.done()
            self.bar = None


_FROM_ENV = object()  # --wait not given: read (and check) HIL_LEASE_WAIT in run()


def _wait(args: argparse.Namespace) -> float | None:
    if args.wait is not _FROM_ENV:
        return args.wait
    from hil.executors.leased import lease_wait

    return lease_wait()


def _image_for(args: argparse.Namespace, board) -> Path:
    if (args.image or args.build_dir) and args.app:
        given = "--build-dir" if args.build_dir else "--image"
        raise UsageError(f"give either APP or {given}, not both")
    foreign = foreign_image(board, args.image, args.build_dir, boot=False)
    if foreign is not None:
        import os
        import time

        from hil.paths import state_dir

        # the audit record and provenance go with a copy, never into the user's directory
        copy_dir = state_dir() / "runs" / \
            f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-flash" / "image"
        image = to_image(board, foreign, copy_dir)
        record_foreign(board, foreign, image, app_name(foreign, image))
        return foreign.path
    if not args.app:
        raise UsageError("nothing to flash: give an APP to build or --image PATH",
                         hint=f"e.g. hil flash --board {board.name} shell")
    from hil.build import build

    return build(board, args.app, toolchain=args.toolchain).hex


def _lease_candidates(board: Board, probe: ProbeId | None, rack: Rack) -> list[RackEntry]:
    """Rack entries one of which this flash must lease (none: the probe is not on the rack)."""
    from hil.flash.probes import list_probes

    if probe:
        return [e for e in rack.entries if e.probe.matches(probe)]
    entries = rack.entries_for_board(board.name)
    if len(entries) <= 1:
        return entries
    remote = [e for e in entries if not e.probe.usb]
    local = [e for e in entries if e not in remote]
    found = list_probes(rack) if local else []
    return remote + [e for e in local if any(e.probe.matches(p.unique_id) for p in found)]


def _check_env_faults() -> None:
    """A malformed HIL_SIM_FAULTS is a usage error, not a probe that cannot be found."""
    from hil.settings import current

    spec = current().sim_faults
    if spec:
        from hil.flash.sim.faults import parse_faults

        parse_faults(spec, "*", "HIL_SIM_FAULTS")


def _probe_arg(probe: str | None) -> ProbeId | None:
    """--probe, parsed (a simulated probe's name names a file: an unsafe one is refused)."""
    if not probe:
        return None
    try:
        return ProbeId.parse(probe)
    except ConfigError as exc:
        raise UsageError(f"--probe {probe}: {exc.message}", hint=exc.hint) from None


def _note_new_sim_board(probe: ProbeId, rack) -> None:
    """A simulated probe named on the command line that neither the rack nor an earlier
    flash knows is a new simulated board: say so, a typo of a rack name looks the same."""
    from hil.flash.sim.store import SimFlashStore

    if SimFlashStore.read_metadata(probe.address) is not None:
        return
    known = ", ".join(str(e.probe) for e in rack.entries if e.probe.simulated) or "none"
    print(f"hil: note: {probe} is not in the rack and has no simulated flash yet: starting "
          f"a new simulated board (the rack's simulated probes: {known})", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    _check_env_faults()
    probe_arg = _probe_arg(args.probe)
    wait = _wait(args)
    board = load_board(args.board)
    rack = load_rack(args.rack)
    image = _image_for(args, board)
    check_image_file(board, image)  # a wrong or oversized image fails before any lease
    candidates = _lease_candidates(board, probe_arg, rack)
    if not candidates:
        if probe_arg is not None and probe_arg.simulated:
            _note_new_sim_board(probe_arg, rack)
        choice = select_probe(board, probe_arg, rack)
        return _flash(args, board, image, choice)
    from hil.rack import lease_store
    from hil.rack.leases import hold, wait_message
    from hil.ui import live

    def waiting(position: int, total: int) -> None:
        live(wait_message(board.name, [e.id for e in candidates], position, total))

    with lease_store(rack) as store:
        with hold(store, [e.id for e in candidates], ttl=60.0, wait=wait,
                  purpose=f"hil flash {board.name}", on_wait=waiting) as lease:
            entry = rack.entry(lease.rack_id)
            assert entry is not None  # the candidates are entries of this rack
            probe = probe_arg or entry.probe
            choice = ProbeChoice(probe, entry, f"leased rack entry {entry.id}")
            try:
                code = _flash(args, board, image, choice)
            except BaseException as exc:
                if is_infrastructure(exc):  # probe or flash: counts against the entry
                    store.report_failure(entry.id, str(exc).splitlines()[0])
                raise
            store.report_ok(entry.id)
            return code


def _flash(args: argparse.Namespace, board: Board, image: Path, choice: ProbeChoice) -> int:
    from hil.flash import audit_flash, record_failed_flash

    flasher = make_flasher(board, choice.unique_id, frequency=args.frequency,
                           connect_mode=args.connect_mode, reset_type=args.reset_type,
                           rack_entry=choice.rack_entry.id if choice.rack_entry else None)
    progress = _PhaseProgress(f"flash {board.name}")
    try:
        report = flasher.flash(image, erase=args.erase, reset=not args.no_reset,
                               progress=progress)
    except BaseException as exc:
        # failed or interrupted: recorded with whether the chip's flash was touched
        progress.close()
        record_failed_flash(flasher, image, exc)
        raise
    progress.close()
    if args.json:
        print(json.dumps(report.as_dict(), sort_keys=True))
    else:
        print(report.summary())
    try:
        audit_flash(flasher, image, report)
    except AuditError as exc:
        print(f"hil: error: the board was flashed but the audit trail could not record it: "
              f"{exc}", file=sys.stderr)
        return int(exc.exit_code)
    return 0
