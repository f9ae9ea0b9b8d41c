"""Generate docs/configuration.md from the settings tables, so the reference never drifts.

Every table is declared once (a Struct with descriptions and env names, see
``foto3d.libs.settings``): the libraries' here, each service's in its own
``settings.py`` as ``SETTINGS``. Run ``python -m foto3d.app.configdoc`` after changing one;
a test fails while the file is stale.
"""

from __future__ import annotations

import importlib
import importlib.util
import typing
from pathlib import Path
from typing import Any

import msgspec

from foto3d.app.registry import SERVICES
from foto3d.libs.auth.web import SETTINGS as AUTH
from foto3d.libs.bus.settings import SETTINGS as BUS
from foto3d.libs.config import CORE
from foto3d.libs.diskspace import SETTINGS as DISK
from foto3d.libs.metrics.settings import SETTINGS as METRICS
from foto3d.libs.settings import Table, TableKind, params_of
from foto3d.rig.settings import SETTINGS as RIG

HEADER = """# Configuration

Generated from the settings declarations by `python -m foto3d.app.configdoc` (a test
fails when this file is out of date).

foto3d runs with no configuration at all (`foto3d up`: embedded NATS, sqlite,
local storage, a local mail outbox). Everything below is optional.

## Where settings come from

Highest precedence first:

1. command-line flags (`--data`, `--nats`, `--port`, `--config`, …);
2. environment variables (`FOTO3D_*`);
3. the TOML config file: `--config FILE`, else `FOTO3D_CONFIG`, else `DATA/foto3d.toml`;
4. built-in defaults.

Every component reads its settings the same way: its `[section]` of the file, then
the environment variables listed beside the keys. An empty variable counts as unset.
Booleans are `true`/`false` in the file and one of `1`, `true`, `yes`, `on` /
`0`, `false`, `no`, `off` in the environment; lists are comma-separated there.
An unknown key or a bad value stops the command with a message naming the file, the
section and the key, or the variable (for example
`foto3d.toml [queue]: unknown key 'max_attempt' (known: …)` or
`FOTO3D_SCALER_ONE_PER_DATASET='ture' is not a boolean …`).

Outside the tables:

| setting | env | default | meaning |
|---|---|---|---|
| data folder | `FOTO3D_DATA` (`--data`) | `$XDG_DATA_HOME/foto3d` or `~/.local/share/foto3d` | all state of `foto3d up`: `nats/` (JetStream store), one folder per service, `run/endpoints.json` |
| config file | `FOTO3D_CONFIG` (`--config`) | `DATA/foto3d.toml` | |
| tracing export | `OTEL_EXPORTER_OTLP_ENDPOINT` | off | spans exported over OTLP/HTTP; trace context always propagates |
| log SDK | `FOTO3D_JOB_ID`, `FOTO3D_OBJECT_ID`, `FOTO3D_LOG_SPOOL` | | see [log-sdk.md](log-sdk.md) |
"""

EXAMPLE = """
## Example

```toml
# DATA/foto3d.toml
public_url = "https://foto3d.internal.example.com"

[notifier]
# see notifier.md for routing rules

[publisher]
bucket = "acme-models"
region = "eu-central-1"
```
"""


def library_tables() -> list[Table[Any]]:
    return [CORE, BUS, AUTH, DISK, METRICS]


def file_tables() -> list[tuple[str, str, Table[Any]]]:
    """Files other than ``foto3d.toml``, read the same way: (file, where it lives, table)."""
    rig_dir = "the rig's folder (`--dir`, else `FOTO3D_RIG_DIR`, else `~/.local/share/foto3d-rig`)"
    return [("rig.toml", rig_dir, RIG)]


def service_tables() -> list[Table[Any]]:
    """Each registered service's ``SETTINGS``, from ``foto3d.services.<name>.settings``."""
    tables: list[Table[Any]] = []
    for entry in SERVICES:
        module = entry.module.rsplit(".", 1)[0] + ".settings"
        if entry.available() and importlib.util.find_spec(module) is not None:
            table = getattr(importlib.import_module(module), "SETTINGS", None)
            if isinstance(table, Table):
                tables.append(table)
    return tables


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _required(struct: type[msgspec.Struct]) -> set[str]:
    return {
        f.name
        for f in msgspec.structs.fields(struct)
        if f.default is msgspec.NODEFAULT and f.default_factory is msgspec.NODEFAULT
    }


def _arrays_of_tables(struct: type[msgspec.Struct]) -> dict[str, type[msgspec.Struct]]:
    """Fields that are a list of Structs: ``[[key]]`` entries in the file."""
    out: dict[str, type[msgspec.Struct]] = {}
    for name, tp in typing.get_type_hints(struct).items():
        args = typing.get_args(tp)
        item = args[0] if typing.get_origin(tp) is list and args else None
        if isinstance(item, type) and issubclass(item, msgspec.Struct):
            out[name] = item
    return out


def _rows(struct: type[msgspec.Struct], section: str, out: list[str], nested: list[str]) -> None:
    out.append("| key | env | default | meaning |")
    out.append("|---|---|---|---|")
    required = _required(struct)
    for p in params_of(struct):
        default = (
            "required" if p.key in required else "unset" if p.default is None else p.kind.show(p.default)
        )
        meaning = p.description + (f" ({p.limits})" if p.limits else "")
        if isinstance(p.kind, TableKind) and isinstance(p.default, msgspec.Struct):
            nested.append(p.key)
        env = f"`{p.env}`" if p.env else ""
        out.append(f"| `{p.key}` | {env} | `{_cell(default)}` | {_cell(meaning)} |")
    out.append("")


def _table(
    table: Table[Any], out: list[str], title: str | None = None, intro: str = "", arrays: bool = False
) -> None:
    """One table's reference; ``arrays`` adds its ``[[key]]`` entries (lists of Structs)."""
    title = title or (f"`[{table.section}]`" if table.section else "Top level")
    out.append(f"## {title} — {table.summary}\n")
    if intro:
        out.append(f"{intro}\n")
    if table.docs:
        out.append(f"More in [{table.docs}]({table.docs}).\n")
    nested: list[str] = []
    _rows(table.struct, table.section, out, nested)
    for key in nested:
        sub = next(f for f in msgspec.structs.fields(table.struct) if f.name == key)
        default = sub.default_factory() if sub.default_factory is not msgspec.NODEFAULT else sub.default
        out.append(f"### `[{table.section}.{key}]`\n")
        _rows(type(default), f"{table.section}.{key}", out, [])
    for key, item in (_arrays_of_tables(table.struct) if arrays else {}).items():
        out.append(f"### `[[{f'{table.section}.' if table.section else ''}{key}]]`\n")
        _rows(item, key, out, [])


def render() -> str:
    out = [HEADER]
    for table in library_tables() + service_tables():
        _table(table, out)
    for name, where, table in file_tables():
        _table(
            table,
            out,
            title=f"`{name}`",
            intro=f"A file of its own in {where}, not part of `foto3d.toml`.",
            arrays=True,
        )
    return "\n".join(out) + EXAMPLE


def main() -> None:
    path = Path("docs/configuration.md")
    path.write_text(render())
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
