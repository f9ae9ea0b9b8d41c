"""`foto3d schema`: write the JSON Schema of every event into docs/schemas/."""

from __future__ import annotations

import argparse
from pathlib import Path

ORDER = 90


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "schema",
        help="write JSON Schema for every bus event",
        description="Write one JSON Schema file per event type of the wire contract (proto/).",
    )
    p.add_argument("-o", "--out", default="docs/schemas", help="output folder (default docs/schemas)")
    p.add_argument("--check", action="store_true", help="exit 1 if the files on disk differ (for CI)")
    p.set_defaults(func=cmd_schema)


def cmd_schema(args: argparse.Namespace) -> int:
    from foto3d.cli.common import fail
    from foto3d.proto.registry import write_schemas

    try:
        changed = write_schemas(Path(args.out), check=args.check)
    except OSError as exc:
        return fail(f"cannot write schemas to {args.out}: {exc.strerror or exc}")
    if args.check:
        if changed:
            print("out of date: " + ", ".join(changed))
            return 1
        print("schemas up to date")
        return 0
    print(f"wrote {len(changed)} changed schema file(s) to {args.out}")
    return 0
