"""Helpers of the command's tests."""

from __future__ import annotations

from tests.conftest import token


def operator_args(**addresses: str) -> list[str]:
    """Global options: the test session's operator credential and the given services' addresses."""
    args = ["--token", token()]
    for service, address in addresses.items():
        args += [f"--{service}-address", address]
    return args
