"""pytest plugin of hil: the dut, board and image fixtures (filled in by the run/test work)."""
