"""Entry point of the `foto3d` console script."""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys

from foto3d import __version__
from foto3d.cli import commands
from foto3d.cli.common import fail, resolve_actor, setup_logging
from foto3d.libs.config import ConfigError


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The full parser, or with ``only`` just that command's module registered (start-up time:
    `foto3d splat ...` need not import the bus client the service commands load)."""
    parser = argparse.ArgumentParser(
        prog="foto3d",
        description="foto3d: photographed products to web-ready 3D Gaussian splats.",
        epilog=(
            "Run `foto3d COMMAND --help` for a command's options. Docs: docs/cli.md. "
            f"A command whose output is closed early (`| head`) stops quietly with status {CLOSED_PIPE_EXIT}."
        ),
    )
    parser.add_argument("--version", action="version", version=f"foto3d {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    mods = []
    for info in pkgutil.iter_modules(commands.__path__):
        if only is not None and info.name != only:
            continue
        mod = importlib.import_module(f"{commands.__name__}.{info.name}")
        if hasattr(mod, "register"):
            mods.append(mod)
    for mod in sorted(mods, key=lambda m: (getattr(m, "ORDER", 50), m.__name__)):
        mod.register(sub)
    _describe_from_help(parser)
    return parser


def _describe_from_help(parser: argparse.ArgumentParser) -> None:
    """A subcommand's one-line help doubles as its description, so `CMD SUB --help` says what it does."""
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        helps = {a.dest: a.help for a in action._choices_actions}
        for name, child in action.choices.items():
            if not child.description and helps.get(name):
                child.description = helps[name]
            _describe_from_help(child)


# What a shell reports for a program ended by SIGPIPE (128 + 13), so scripts see the usual code.
CLOSED_PIPE_EXIT = 141


def main(argv: list[str] | None = None) -> int:
    """Run one command; a reader that goes away (`| head -1`) ends it quietly, not with a traceback."""
    try:
        try:
            return _run(argv)
        finally:
            # Flush here, inside the handler: at interpreter exit a failed flush prints a traceback.
            sys.stdout.flush()
    except BrokenPipeError:
        # Point stdout at /dev/null so the interpreter's own final flush has nowhere to fail.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return CLOSED_PIPE_EXIT


#: Commands that run offline and whose start-up time is measured against other tools.
_FAST_PATH = {"splat"}


def _run(argv: list[str] | None) -> int:
    words = sys.argv[1:] if argv is None else argv
    parser = build_parser(words[0] if words and words[0] in _FAST_PATH else None)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    setup_logging(getattr(args, "verbose", 0) or 0)
    try:
        resolve_actor(args)
        return int(args.func(args))
    except ConfigError as exc:
        return fail(str(exc))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
