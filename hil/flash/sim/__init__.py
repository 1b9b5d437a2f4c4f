"""The simulated SWD probe and board behind ``hilsim:`` probes: the chip (``chip``, with the
flash algorithm executed on an emulated core, ``cpu``, against register models of the flash
controllers, ``stm32f4_flash``), the persisted flash (``store``), injected faults
(``faults``), the run and power state shared with the QEMU owner (``runstate``, ``power``),
and the direct flasher of boards pyOCD cannot drive (``direct``)."""
