"""Reading settings from the environment, once, failing fast with the variable's name."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import os
import re
import sys
from collections.abc import Iterator, Mapping
from typing import Any


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


# ---- `python -m <service> --help`: the settings a service reads, from its own config ------------------


class _Recorder(Mapping[str, str]):
    """An environment that remembers which variables were asked for, in order."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ
        self.asked: list[str] = []

    def __getitem__(self, key: str) -> str:
        self._note(key)
        return self._environ[key]

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        self._note(key)
        return self._environ.get(key, default)

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            self._note(key)
        return key in self._environ

    def __iter__(self) -> Iterator[str]:
        return iter(self._environ)

    def __len__(self) -> int:
        return len(self._environ)

    def _note(self, key: str) -> None:
        if key not in self.asked:
            self.asked.append(key)


_COMMENTED_FIELD = re.compile(r"((?:^[ \t]*#.*\n)+)[ \t]*(\w+)\s*:", re.MULTILINE)
_DOC_VARIABLE = re.compile(r"^\s+<SERVICE>_([A-Z_]+)(?:,\s*<SERVICE>_([A-Z_]+))?\s*(.*)$")


def _field_comments(cls: type) -> dict[str, str]:
    """field name -> the comment lines just above it in the class body (they say units and meaning)."""
    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):
        return {}
    out = {}
    for match in _COMMENTED_FIELD.finditer(source):
        lines = [line.strip().lstrip("#").strip() for line in match.group(1).splitlines()]
        out[match.group(2)] = " ".join(line for line in lines if line)
    return out


def _doc_variables(module_doc: str | None) -> dict[str, str]:
    """<SERVICE>_NAME descriptions from a module docstring's indented variable list."""
    out: dict[str, str] = {}
    names: list[str] = []
    for line in (module_doc or "").splitlines():
        match = _DOC_VARIABLE.match(line)
        if match:
            names = [n for n in match.group(1, 2) if n]
            for name in names:
                out[name] = match.group(3).strip()
        elif names and line.startswith(" " * 8) and line.strip():
            for name in names:
                out[name] = f"{out[name]} {line.strip()}".strip()
        else:
            names = []
    return out


def _value_for(settings: Any, suffix: str) -> tuple[bool, Any]:
    """The value behind a variable's suffix: a field of that name, or of a nested settings object."""
    name = suffix.lower()
    if dataclasses.is_dataclass(settings):
        fields = {f.name for f in dataclasses.fields(settings)}
        if name in fields:
            return True, getattr(settings, name)
        for f in dataclasses.fields(settings):
            inner = getattr(settings, f.name)
            if dataclasses.is_dataclass(inner):
                for candidate in (name, name.removeprefix("auth_")):
                    if candidate in {g.name for g in dataclasses.fields(inner)}:
                        return True, getattr(inner, candidate)
    return False, None


def _shown(variable: str, value: Any) -> str:
    if value is None:
        return "unset"
    text = str(value)
    if variable.endswith("_TOKEN") or "PASSWORD" in variable or "SECRET" in variable:
        return "(set, hidden)"
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", text)  # a password in a URL


def describe_settings(service: str, settings_cls: Any, environ: Mapping[str, str] | None = None) -> str:
    """Every variable `settings_cls.from_env` reads, with its default, its value in `environ` (secrets
    hidden) and what it means (the comment above the field in the settings class)."""
    environ = os.environ if environ is None else environ
    defaults = settings_cls.from_env({})
    recorder = _Recorder(environ)
    problem = None
    try:
        current = settings_cls.from_env(recorder)
    except SettingsError as exc:
        current, problem = None, str(exc)
    comments = _field_comments(settings_cls)
    for f in dataclasses.fields(defaults):
        inner = getattr(defaults, f.name)
        if dataclasses.is_dataclass(inner):
            comments.update({k: v for k, v in _field_comments(type(inner)).items() if k not in comments})
            doc = sys.modules[type(inner).__module__].__doc__
            comments.update({k.lower(): v for k, v in _doc_variables(doc).items()})
    prefix = f"{service.upper()}_"
    lines = [f"Settings of {service}, read once from the environment at start-up:", ""]
    for variable in recorder.asked:
        suffix = variable.removeprefix(prefix)
        _, default = _value_for(defaults, suffix)
        line = f"  {variable}  (default: {_shown(variable, default)}"
        if variable in environ and current is not None:
            _, now = _value_for(current, suffix)
            line += f"; now: {_shown(variable, now)}"
        lines.append(line + ")")
        meaning = comments.get(suffix.lower()) or comments.get(suffix.lower().removeprefix("auth_"))
        if meaning:
            lines.append(f"      {meaning}")
    if problem:
        lines += ["", f"This environment's settings are invalid: {problem}"]
    return "\n".join(lines)


def parse_service_args(
    service: str, doc: str | None, settings_cls: Any, argv: list[str] | None = None
) -> None:
    """The command line of `python -m <service>`: settings come from the environment only, so the one
    option is --help, which lists them and exits without starting anything."""
    args = sys.argv[1:] if argv is None else argv
    wants_help = any(a in ("-h", "--help") for a in args)
    parser = argparse.ArgumentParser(
        prog=f"python -m {service}",
        description=doc,
        # Described only when asked: a start-up never depends on the describer.
        epilog=describe_settings(service, settings_cls) if wants_help else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.parse_args(args)
