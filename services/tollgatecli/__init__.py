"""The `tollgate` command: operate the suite through its gRPC APIs with the caller's credential.

It imports no context's code (gateway, metering, billing): it speaks their public contracts (the stubs
in gen/python) and uses `common` only for credentials and Money/Decimal conversions, as any client would.
"""
