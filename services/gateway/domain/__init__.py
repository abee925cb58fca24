"""The gateway's rules as plain Python: catalog, keys, routing, breakers, rate limits, usage. No I/O."""
