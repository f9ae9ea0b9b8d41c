"""Find every contract type and write its JSON Schema.

A type is exported when it is an :class:`Event` subclass defined in a ``proto``
module, or listed in that module's ``SCHEMAS`` tuple (API bodies and replies).
"""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
from pathlib import Path
from typing import Any

import msgspec

from foto3d import proto
from foto3d.proto.base import Event


def contract_types() -> dict[str, type[msgspec.Struct]]:
    found: dict[str, type[msgspec.Struct]] = {}
    for info in pkgutil.iter_modules(proto.__path__):
        if info.name in {"registry", "base"}:
            continue
        mod = importlib.import_module(f"{proto.__name__}.{info.name}")
        listed = set(getattr(mod, "SCHEMAS", ()))
        for obj in vars(mod).values():
            if not isinstance(obj, type) or not issubclass(obj, msgspec.Struct):
                continue
            if obj.__module__ != mod.__name__:
                continue
            tag = obj.__struct_config__.tag
            # An Event subclass without its own tag is a base class, not a message.
            is_event = issubclass(obj, Event) and tag is not None and tag != obj.__name__
            if is_event or obj in listed:
                found[f"{info.name}.{obj.__name__}"] = obj
    return dict(sorted(found.items()))


def schema_of(tp: type[msgspec.Struct]) -> dict[str, Any]:
    schema: dict[str, Any] = normalise_descriptions(msgspec.json.schema(tp))
    tag = tp.__struct_config__.tag
    if tag is not None:
        schema["title"] = str(tag)
    return schema


def normalise_descriptions(node: Any) -> Any:
    """Every ``description`` in ``node`` through :func:`inspect.cleandoc`, recursively.

    msgspec copies a Struct's docstring into its schema, and releases differ in how:
    up to 0.22 verbatim (continuation lines keep the class body's indent), from 0.23
    dedented. ``cleandoc`` is idempotent and maps both to the same text, so the committed
    schemas depend on our source alone, not on the msgspec release that wrote them.
    """
    if isinstance(node, dict):
        return {
            key: inspect.cleandoc(value)
            if key == "description" and isinstance(value, str)
            else normalise_descriptions(value)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [normalise_descriptions(item) for item in node]
    return node


def write_schemas(out: Path, check: bool = False) -> list[str]:
    """Write each schema to ``out/<module>.<Type>.json``; return the names that changed."""
    out.mkdir(parents=True, exist_ok=True)
    changed: list[str] = []
    for name, tp in contract_types().items():
        text = json.dumps(schema_of(tp), indent=2, sort_keys=True) + "\n"
        path = out / f"{name}.json"
        if not path.exists() or path.read_text() != text:
            changed.append(path.name)
            if not check:
                path.write_text(text)
    return changed
