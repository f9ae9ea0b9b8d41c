"""What every command shares: the options that find the system, settings, errors."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import re
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from foto3d.libs.config import ConfigError, Settings
from foto3d.libs.discovery import resolve_nats_urls

if TYPE_CHECKING:
    from foto3d.libs.bus.connection import Bus

Handler = Callable[[argparse.Namespace], int]


def system_options() -> argparse.ArgumentParser:
    """Parent parser with the options that locate a running system."""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("finding the system")
    g.add_argument(
        "--data",
        metavar="DIR",
        help="data folder of the `foto3d up` to talk to (env FOTO3D_DATA; default ~/.local/share/foto3d)",
    )
    g.add_argument(
        "--nats",
        metavar="URL[,URL...]",
        help="NATS server(s) to use instead of the embedded one (env FOTO3D_NATS_URL)",
    )
    g.add_argument(
        "--config", metavar="FILE", help="config file (env FOTO3D_CONFIG; default DATA/foto3d.toml)"
    )
    g.add_argument(
        "--creds",
        metavar="FILE",
        help="this participant's nkey seed file from `foto3d auth` (env FOTO3D_NATS_CREDS; "
        "default: the data folder's key when talking to its `foto3d up`)",
    )
    g.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    return p


def login_name() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name in some containers
        return "unknown"


def default_actor(data_dir: Path | None = None) -> str:
    """Who a command acts as when `--as` is not given, the one rule for every command: env
    FOTO3D_USER; else the staff account the login is linked to in the data folder's user store
    (`foto3d users link`), or the account named like the login; else the login name. So one
    person's CLI and page actions carry the same name: their staff account's."""
    if explicit := os.environ.get("FOTO3D_USER"):
        return explicit
    login = login_name()
    if data_dir is not None:
        from foto3d.libs.auth.users import account_for_login

        return account_for_login(data_dir / "auth" / "users.db", login) or login
    return login


def add_actor_option(p: argparse.ArgumentParser, what: str = "recorded in the timeline") -> None:
    # None until main() resolves it: the data folder (the user store) is known only after parsing.
    p.add_argument(
        "--as",
        dest="actor",
        metavar="NAME",
        default=None,
        help=f"who is doing this, {what} (env FOTO3D_USER; default the staff account your login "
        "is linked to, else your login name)",
    )


def resolve_actor(args: argparse.Namespace) -> None:
    """Fill in ``args.actor`` where the command has `--as` and it was not given."""
    if hasattr(args, "actor") and args.actor is None:
        args.actor = default_actor(settings_from(args).data_dir)


# Environment variable naming the participant's key (read by the bus client itself).
CREDS_ENV = "FOTO3D_NATS_CREDS"
# The data folder's identities (`foto3d up`, `foto3d auth`): keys/<participant>.nk.
AUTH_DIR = "auth"
_explicit_creds: Path | None = None


def data_key(settings: Settings, participant: str) -> Path | None:
    """``participant``'s key in the data folder's identities, if it has one."""
    key = settings.data_dir / AUTH_DIR / "keys" / f"{participant}.nk"
    return key if key.exists() else None


def cli_creds(settings: Settings) -> Path | None:
    """The key a command connects with: ``--creds``; else, for the `foto3d up` found through
    the data folder, that folder's staff key; else none here (FOTO3D_NATS_CREDS applies)."""
    if _explicit_creds is not None:
        return _explicit_creds
    if not settings.nats_urls:
        return data_key(settings, "staff")
    return None


def settings_from(args: argparse.Namespace) -> Settings:
    global _explicit_creds
    creds = getattr(args, "creds", None)
    if creds:
        # Also for the processes a command starts (`foto3d run`'s log shipping).
        _explicit_creds = Path(creds).expanduser()
        os.environ[CREDS_ENV] = str(_explicit_creds)
    settings = Settings.load(
        data_dir=getattr(args, "data", None),
        nats=getattr(args, "nats", None),
        http_port=getattr(args, "port", None),
        config=getattr(args, "config", None),
    )
    key = cli_creds(settings)
    if key is not None:
        # Every connection of this command (and of what it starts) is the same person.
        os.environ[CREDS_ENV] = str(key)
    return settings


def setup_logging(verbose: int) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s", stream=sys.stderr
    )


CLI_CONNECT_TIMEOUT_S = 5.0


async def connect_cli(
    settings: Settings, name: str = "foto3d-cli", timeout: float = CLI_CONNECT_TIMEOUT_S
) -> Bus:
    """Connect for one command, failing within ``timeout`` when nothing answers.

    The bus client reconnects without limit (right for services), which would make
    a command wait for ever on a wrong or dead URL; a person wants an answer.
    """
    # Imported here: the bus client (nats, aiohttp) is most of the CLI's start-up, and the
    # offline commands (`splat`, `schema`) never connect.
    from foto3d.libs.bus.connection import connect

    urls = resolve_nats_urls(settings)
    try:
        return await asyncio.wait_for(
            connect(urls, name, retry_initial=False, creds=cli_creds(settings)), timeout
        )
    except TimeoutError:
        raise ConfigError(
            f"cannot reach NATS at {', '.join(urls)} within {timeout:g} s "
            "(is `foto3d up` running? check --nats / FOTO3D_NATS_URL; if it refused the key "
            "(Authorization Violation above), check --creds / FOTO3D_NATS_CREDS)"
        ) from None
    except ConnectionError as exc:
        raise ConfigError(str(exc)) from exc


def run_async(coro_fn: Callable[[], Coroutine[Any, Any, int]]) -> int:
    try:
        return asyncio.run(coro_fn())
    except KeyboardInterrupt:
        return 130


_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|d|w)?\s*$", re.IGNORECASE)
_UNIT = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float:
    """'90', '90s', '15m', '1h', '2d' -> seconds. Raises ValueError with a readable message."""
    m = _DURATION_RE.match(text)
    if not m:
        raise ValueError(f"cannot read duration {text!r} (examples: 30s, 15m, 1h, 2d)")
    return float(m.group(1)) * _UNIT[(m.group(2) or "s").lower()]


def parse_since(text: str) -> float:
    """A relative duration ('1h') or an ISO date/time, as epoch seconds."""
    try:
        return time.time() - parse_duration(text)
    except ValueError:
        pass
    from datetime import datetime

    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"cannot read time {text!r} (use e.g. 1h, 30m, or 2026-11-26T10:00)") from None
    return dt.timestamp()


def fail(message: str, code: int = 2) -> int:
    print(f"foto3d: error: {message}", file=sys.stderr)
    return code


class CommandError(Exception):
    """A failure already worded for the person; :func:`run_on_bus` prints it as one error line
    and exits with ``code``."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Unanswered:
    """How a command words a service that does not answer: nobody serves the endpoint
    (``not_running``), or no reply came in time (``no_answer``; the same words when empty)."""

    not_running: str
    no_answer: str = ""
    code: int = 2


# How each service's silence is worded, once per service (its commands share them).
CATALOG_UNANSWERED = Unanswered(
    "the catalog service is not running (start `foto3d up` or `foto3d serve catalog`)"
)
GATEWAY_UNANSWERED = Unanswered(
    "the token gateway does not answer (is `foto3d up` or `foto3d serve token_gateway` running?)"
)


def run_on_bus(args: argparse.Namespace, fn: Callable[[Bus], Awaitable[int]], unanswered: Unanswered) -> int:
    """Connect as the options say, run ``fn``, close: the one place where a service's error
    reply becomes the person's error line.

    A refusal (micro's error headers, raised as ``ServiceError``) is printed in the service's
    own words with exit status 2, so the person reads why, not a traceback; silence is worded by
    ``unanswered``; a :class:`CommandError` raised by ``fn`` is printed as it is.
    """
    # Imported here, like the bus client itself: the offline commands never load nats.
    import nats.errors

    from foto3d.proto.api import ServiceError

    settings = settings_from(args)

    async def main() -> int:
        bus = await connect_cli(settings)
        try:
            return await fn(bus)
        except ServiceError as exc:
            return fail(exc.description)
        except nats.errors.NoRespondersError:
            return fail(unanswered.not_running, unanswered.code)
        except TimeoutError:  # nats.errors.TimeoutError is one
            return fail(unanswered.no_answer or unanswered.not_running, unanswered.code)
        except CommandError as exc:
            return fail(str(exc), exc.code)
        finally:
            await bus.close()

    return run_async(main)
