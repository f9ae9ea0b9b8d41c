"""Generate docs/cli.md from the argument parsers, so the reference never drifts from --help."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from foto3d.cli.main import build_parser

HEADER = """# Command reference

Generated from the commands' own `--help` by `python -m foto3d.cli.docs`
(a test fails when this file is out of date). Every command also accepts the
options that find the running system: `--data DIR` (`FOTO3D_DATA`),
`--nats URL[,URL…]` (`FOTO3D_NATS_URL`) and `--config FILE` (`FOTO3D_CONFIG`);
see [configuration.md](configuration.md).
"""


def _subparsers(p: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _walk(name: str, p: argparse.ArgumentParser, depth: int, out: list[str]) -> None:
    out.append(f"{'#' * depth} `{name}`\n")
    out.append("```text\n" + p.format_help().rstrip() + "\n```\n")
    for sub_name, sub in _subparsers(p).items():
        _walk(f"{name} {sub_name}", sub, min(depth + 1, 4), out)


def render() -> str:
    os.environ["COLUMNS"] = "100"  # stable wrapping
    parser = build_parser()
    out = [HEADER]
    for name, sub in _subparsers(parser).items():
        _walk(f"foto3d {name}", sub, 2, out)
    return "\n".join(out)


def main() -> None:
    path = Path("docs/cli.md")
    path.write_text(render())
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
