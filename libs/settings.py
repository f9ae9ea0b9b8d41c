"""One way to declare and read settings, the same for every service and library.

A component declares its settings as a msgspec Struct: each field's type and
``msgspec.Meta`` say what is valid and what it means (``description``), and an
:class:`Env` marker in the same ``Annotated`` names the environment variable that
overrides it. A :class:`Table` binds the Struct to its ``[section]`` of the config
file. Loading reads the file's table, applies the environment (parsed by the field's
:class:`Kind`, so ``true``/``yes``/``1`` mean the same everywhere), and validates the
result; an unknown key or a bad value is a :class:`ConfigError` naming the key, or the
variable it came from. ``docs/configuration.md`` is generated from the same tables.

The model is faust's settings: one parameter type per kind, each with its env name.
"""

from __future__ import annotations

import os
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import msgspec

S = TypeVar("S", bound=msgspec.Struct)


class ConfigError(ValueError):
    """A setting that cannot be used; the message names it and says why."""


@dataclass(frozen=True)
class Env:
    """``Annotated`` marker: this field can be set with the environment variable ``name``."""

    name: str


class ConfigSource(Protocol):
    """What a table is read from: the parsed config file and where it came from."""

    @property
    def raw(self) -> dict[str, Any]: ...

    @property
    def config_path(self) -> Path | None: ...


# ---- kinds: how an environment string becomes a value ---------------------------------

TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})


class Kind:
    """How one type of setting is written as text (in the environment and in the docs)."""

    name = "value"

    def parse(self, text: str) -> object:
        raise ValueError(f"cannot be set from the environment ({self.name})")

    def show(self, value: object) -> str:
        return "" if value is None else str(value)


class BoolKind(Kind):
    name = "boolean"

    def parse(self, text: str) -> object:
        low = text.strip().lower()
        if low in TRUE_WORDS:
            return True
        if low in FALSE_WORDS:
            return False
        raise ValueError(f"is not a boolean (use one of {', '.join(sorted(TRUE_WORDS | FALSE_WORDS))})")

    def show(self, value: object) -> str:
        return "true" if value else "false"


class IntKind(Kind):
    name = "integer"

    def parse(self, text: str) -> object:
        try:
            return int(text.strip())
        except ValueError:
            raise ValueError("is not a whole number") from None


class FloatKind(Kind):
    name = "number"

    def parse(self, text: str) -> object:
        try:
            return float(text.strip())
        except ValueError:
            raise ValueError("is not a number") from None

    def show(self, value: object) -> str:
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        return super().show(value)


class StrKind(Kind):
    name = "text"

    def parse(self, text: str) -> object:
        return text.strip()

    def show(self, value: object) -> str:
        return '""' if value == "" else super().show(value)


class ChoiceKind(Kind):
    name = "choice"

    def __init__(self, choices: tuple[object, ...]) -> None:
        self.choices = choices

    def parse(self, text: str) -> object:
        value = text.strip()
        if value not in self.choices:
            raise ValueError(f"must be one of {', '.join(map(str, self.choices))}")
        return value


class ListKind(Kind):
    """A list of text items, written comma-separated (``;`` works too) in the environment."""

    name = "list"

    def __init__(self, item: Kind) -> None:
        self.item = item

    def parse(self, text: str) -> object:
        return [self.item.parse(p) for p in re.split(r"[,;]", text) if p.strip()]

    def show(self, value: object) -> str:
        return ", ".join(map(str, value)) if isinstance(value, list) and value else "[]"


class TableKind(Kind):
    """A nested table or mapping: only the config file can set it."""

    name = "table"

    def show(self, value: object) -> str:
        return "see below" if isinstance(value, msgspec.Struct) else "{}" if value == {} else "…"


def kind_of(tp: Any) -> Kind:
    """The kind of a (de-Annotated, non-optional) field type."""
    if tp is bool:
        return BoolKind()
    if tp is int:
        return IntKind()
    if tp is float:
        return FloatKind()
    if tp is str:
        return StrKind()
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return ChoiceKind(typing.get_args(tp))
    if origin is list:
        (item,) = typing.get_args(tp)
        item_kind = kind_of(_strip(item)[0])
        if isinstance(item_kind, StrKind | ChoiceKind):
            return ListKind(item_kind)
    return TableKind()


def _strip(tp: Any) -> tuple[Any, list[Any]]:
    """``Annotated[X | None, a, b]`` -> (X, [a, b])."""
    extras: list[Any] = []
    if typing.get_origin(tp) is typing.Annotated:
        tp, *extras = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            inner, more = _strip(args[0])
            return inner, extras + more
    return tp, extras


# ---- one declared setting --------------------------------------------------------------


@dataclass(frozen=True)
class Param:
    key: str
    kind: Kind
    default: object
    env: str | None
    description: str
    limits: str  # e.g. ">= 1, <= 20"


def _default(field: msgspec.structs.FieldInfo) -> object:
    if field.default is not msgspec.NODEFAULT:
        return field.default
    if field.default_factory is not msgspec.NODEFAULT:
        return field.default_factory()
    return None


def _limits(metas: list[msgspec.Meta]) -> str:
    parts = []
    for m in metas:
        for attr, sign in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            v = getattr(m, attr)
            if v is not None:
                parts.append(f"{sign} {v}")
    return ", ".join(parts)


def params_of(struct: type[msgspec.Struct]) -> list[Param]:
    hints = typing.get_type_hints(struct, include_extras=True)
    out = []
    for field in msgspec.structs.fields(struct):
        tp, extras = _strip(hints[field.name])
        metas = [e for e in extras if isinstance(e, msgspec.Meta)]
        envs = [e.name for e in extras if isinstance(e, Env)]
        kind = kind_of(tp)
        if envs and isinstance(kind, TableKind):
            raise TypeError(f"{struct.__name__}.{field.name}: a table cannot come from {envs[0]}")
        out.append(
            Param(
                key=field.name,
                kind=kind,
                default=_default(field),
                env=envs[0] if envs else None,
                description=" ".join(m.description for m in metas if m.description),
                limits=_limits(metas),
            )
        )
    return out


# ---- a section of the config file ------------------------------------------------------

_AT_KEY = re.compile(r"at `\$\.(\w+)")


@dataclass(frozen=True)
class Table(Generic[S]):
    """The settings of one component: its ``[section]`` (``""`` = the file's top level)."""

    section: str
    struct: type[S]
    summary: str
    # Cross-field rules the types cannot say; raises ConfigError.
    check: Callable[[S], None] | None = None
    # Where the component's own docs say more.
    docs: str = ""
    # A view of a few keys of a table another component owns (the scaler reading the
    # trainer's): other keys are that component's to check, and the docs list it once.
    partial: bool = False

    def params(self) -> list[Param]:
        return params_of(self.struct)

    def load(self, source: ConfigSource, env: Mapping[str, str] | None = None) -> S:
        where = str(source.config_path or "config")
        return self.read(source.raw, where, os.environ if env is None else env)

    def read(self, raw: Mapping[str, Any], where: str, env: Mapping[str, str]) -> S:
        label = f"{where} [{self.section}]" if self.section else where
        params = self.params()
        known = {p.key for p in params}
        if self.section:
            table = raw.get(self.section, {})
            if not isinstance(table, dict):
                raise ConfigError(f"{label} must be a table, got {table!r}")
        else:
            # The top level also holds the other components' [sections].
            table = {k: v for k, v in raw.items() if not isinstance(v, dict)}
        unknown = sorted(set(table) - known)
        if self.partial:
            table = {k: v for k, v in table.items() if k in known}
        elif unknown:
            raise ConfigError(f"{label}: unknown key {unknown[0]!r} (known: {', '.join(sorted(known))})")
        values = dict(table)
        origin: dict[str, str] = {}
        for p in params:
            text = env.get(p.env) if p.env else None
            if p.env is None or text is None or not text.strip():
                continue
            try:
                values[p.key] = p.kind.parse(text)
            except ValueError as exc:
                raise ConfigError(f"{p.env}={text!r} {exc}") from None
            origin[p.key] = f"{p.env}={text!r}"
        try:
            cfg = msgspec.convert(values, self.struct, str_keys=True)
        except msgspec.ValidationError as exc:
            m = _AT_KEY.search(str(exc))
            key = m.group(1) if m else None
            source = origin.get(key) if key else None
            raise ConfigError(f"{source or label}: {exc}") from None
        if self.check is not None:
            self.check(cfg)
        return cfg
