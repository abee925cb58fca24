"""Payouts' rules as plain Python: no I/O, no protos, no SQL."""
