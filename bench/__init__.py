"""Benchmarks: `make bench` runs every context's; `python -m bench metering` runs one."""
