# hil: `make demo` and `make test` work on a fresh Debian machine. They install the Debian
# packages that are missing (cross toolchains, clang/lld, QEMU, OpenOCD, ser2net,
# PostgreSQL, Chromium) and the Python packages from pyproject.toml into .venv/.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV := .venv
PY := $(VENV)/bin/python
HIL := $(VENV)/bin/hil
JOBS ?= $(shell nproc 2>/dev/null || echo 2)

# Debian packages hil runs (see `hil doctor`); clang-format checks the firmware C style in
# `make test` (style in .clang-format); uhubctl and pdudaemon are the power drivers' real
# programs; gdb-multiarch attaches to `hil debug`.
APT_PACKAGES := \
	gcc-arm-none-eabi binutils-arm-none-eabi \
	gcc-riscv64-unknown-elf binutils-riscv64-unknown-elf \
	clang lld llvm \
	qemu-system-arm qemu-system-misc \
	openocd ser2net postgresql chromium clang-format \
	cmake ninja-build make \
	uhubctl pdudaemon gdb-multiarch \
	python3-venv

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: help deps system-deps venv demo test bench lint clean

help:
	@echo "make demo   install what is missing, then build and run the main job on the examples"
	@echo "make test   install what is missing, then run the whole test suite"
	@echo "make bench  run the benchmarks in bench/ (prints ratios against baselines)"
	@echo "make lint   ruff and mypy (make test runs them too)"
	@echo "make clean  remove build outputs and local state (keeps .venv)"

deps: system-deps venv

# Install only the Debian packages that are missing; `apt-get update` only when needed.
system-deps:
	@missing=""; \
	for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq; \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@[ -x $(PY) ] || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	@touch $@

BOARDS := nucleo-f4 nucleo-f446re lm3s6965evb hifive1-revb
BOARD_ARGS := $(foreach b,$(BOARDS),--board $(b))

demo: deps
	@echo "== hil doctor: the tools hil runs"
	$(HIL) doctor
	@echo "== build every example for every board with GCC and Clang"
	$(HIL) build --all --toolchain gcc --toolchain clang -j $(JOBS)
	@echo "== flash the shell image through pyOCD into a simulated SWD probe"
	$(HIL) flash --board nucleo-f4 shell --probe hilsim:f4-a
	@echo "== test the shell on every board (the rack's virtual boards: lease, flash, test, release)"
	$(HIL) test $(BOARD_ARGS) shell --junit build/verdict-shell.xml
	@echo "== on-target unit tests (Unity output), one test case per test"
	$(HIL) test $(BOARD_ARGS) selftest --harness unity --junit build/verdict-selftest.xml
	@echo "== the rack after the run"
	$(HIL) rack status
	@echo "== audit: which toolchain built the shell image, and where it was tested"
	$(HIL) audit image build/nucleo-f4/shell/firmware.hex
	$(HIL) audit report --html build/audit-report.html

test: deps
	@echo "== lint (ruff) and types (mypy)"
	$(PY) -m ruff check hil tests bench
	$(PY) -m mypy hil
	@echo "== the test suite"
	$(PY) -m pytest -n $(JOBS) -p no:cacheprovider -W error

bench: deps
	$(PY) bench/build.py
	$(PY) bench/console.py
	$(PY) bench/idle.py
	$(PY) bench/flash.py
	$(PY) bench/rack.py
	$(PY) bench/audit.py
	$(PY) bench/gate.py

lint: venv
	$(PY) -m ruff check hil tests bench
	$(PY) -m mypy hil

clean:
	rm -rf build .hil
