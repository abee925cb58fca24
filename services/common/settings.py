"""Reading settings from the environment, once, failing fast with the variable's name."""

from __future__ import annotations

import os
from collections.abc import Mapping


class SettingsError(ValueError):
    pass


class Env:
    """Typed reads of PREFIX_NAME variables from a mapping (os.environ by default)."""

    def __init__(self, prefix: str, environ: Mapping[str, str] | None = None) -> None:
        self.prefix = prefix.upper()
        self.environ = os.environ if environ is None else environ

    def _key(self, name: str) -> str:
        return f"{self.prefix}_{name.upper()}"

    def str(self, name: str, default: str | None = None) -> str | None:
        value = self.environ.get(self._key(name))
        return default if value is None or value == "" else value

    def int(self, name: str, default: int) -> int:
        raw = self.str(name)
        if raw is None:
            return default
        try:
            return int(raw)
        except ValueError:
            raise SettingsError(f"{self._key(name)} must be an integer, got {raw!r}") from None

    def float(self, name: str, default: float) -> float:
        raw = self.str(name)
        if raw is None:
            return default
        try:
            return float(raw)
        except ValueError:
            raise SettingsError(f"{self._key(name)} must be a number, got {raw!r}") from None

    def bool(self, name: str, default: bool) -> bool:
        raw = self.str(name)
        if raw is None:
            return default
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise SettingsError(f"{self._key(name)} must be true or false, got {raw!r}")

    def optional_port(self, name: str, default: int | None) -> int | None:
        """A TCP port for an optional listener: unset gives the default; `off`, `none` or 0 turn it off."""
        raw = self.str(name)
        if raw is None:
            return default
        if raw.lower() in ("off", "none"):
            return None
        port = self.int(name, 0)
        if not 0 <= port <= 65535:
            raise SettingsError(f"{self._key(name)} must be a port (1 to 65535) or off, got {raw!r}")
        return port or None
