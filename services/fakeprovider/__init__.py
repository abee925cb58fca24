"""A stand-in OpenAI-compatible model provider for tests, benchmarks, the demo and compose.

Run it with `python -m fakeprovider --port 8091 --name provider_a`, or in-process with
`await fakeprovider.app.start("127.0.0.1", 0, name="provider_a")`.
"""
