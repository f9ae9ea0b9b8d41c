"""`foto3d rig`: set up and run a capture rig (its own server, joined to the sites as a leaf node,
+ agent), see its status, serve its panel."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import msgspec

from foto3d.cli.common import fail, run_async
from foto3d.libs.bus.identities import write_private
from foto3d.libs.config import ConfigError
from foto3d.proto.rig import LinkState, RigStatus
from foto3d.rig import settings as rig_settings
from foto3d.rig.leaf import write_leaf_config
from foto3d.rig.settings import RigSettings, default_rig_dir
from foto3d.rig.status import read_status

ORDER = 35


def _dir_option() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument(
        "--dir",
        metavar="DIR",
        help="the rig's folder: settings, its server's store, state (env FOTO3D_RIG_DIR; "
        "default ~/.local/share/foto3d-rig)",
    )
    p.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    return p


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("rig", help="capture rigs: offline store-and-forward, status and operator panel")
    rs = p.add_subparsers(dest="rig_command", metavar="SUBCOMMAND")

    def usage(args: argparse.Namespace) -> int:
        p.print_help()
        return 2

    p.set_defaults(func=usage)

    i = rs.add_parser("init", parents=[_dir_option()], help="write the rig's settings (rig.toml)")
    i.add_argument("--rig-id", required=True, metavar="ID", help="this rig's id, e.g. rig-03 ([a-z0-9_-])")
    for site in ("local", "cloud"):
        i.add_argument(f"--{site}-nats", metavar="URL[,URL...]", help=f"NATS server(s) of the {site} site")
        i.add_argument(
            f"--{site}-store",
            metavar="URI",
            help=f"where dataset files go at the {site} site: a folder, file:///path or s3://bucket/prefix",
        )
        i.add_argument(
            f"--{site}-s3-endpoint", metavar="URL", help=f"S3-compatible endpoint of the {site} store"
        )
        i.add_argument(
            f"--{site}-leaf",
            metavar="URL[,URL...]",
            help=f"leafnode URL(s) of the {site} site's hub, where the rig's server joins it "
            f"(default: the hosts of --{site}-nats on port 7422)",
        )
    i.add_argument(
        "--leaf-port", type=int, default=4290, help="port of the rig's own nats-server (default 4290)"
    )
    i.add_argument("--panel-port", type=int, default=8290, help="port of `foto3d rig panel` (default 8290)")
    i.add_argument(
        "--creds",
        metavar="FILE",
        help="the rig's key from `foto3d auth add rig ID` (copied owner-only into the rig's folder)",
    )
    i.add_argument("--force", action="store_true", help="overwrite existing settings")
    i.set_defaults(func=cmd_init)

    u = rs.add_parser("up", parents=[_dir_option()], help="run the rig's nats-server and agent until stopped")
    u.set_defaults(func=cmd_up)

    s = rs.add_parser(
        "status", parents=[_dir_option()], help="online/offline, items waiting, upload, problems"
    )
    s.add_argument("--json", action="store_true", help="print the status as JSON")
    s.set_defaults(func=cmd_status)

    pn = rs.add_parser("panel", parents=[_dir_option()], help="serve the operator's page")
    pn.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    pn.add_argument("--port", type=int, help="port (default: panel_port of rig.toml)")
    pn.set_defaults(func=cmd_panel)


# The rig's own copy of its key, beside rig.toml.
RIG_KEY = "rig.nk"


def _rig_dir(args: argparse.Namespace) -> Path:
    return Path(args.dir).expanduser() if args.dir else default_rig_dir()


def cmd_init(args: argparse.Namespace) -> int:
    rig_dir = _rig_dir(args)
    if rig_settings.config_path(rig_dir).exists() and not args.force:
        return fail(f"{rig_settings.config_path(rig_dir)} exists (use --force to overwrite)")
    sites = []
    for name in ("local", "cloud"):
        nats_url, store = getattr(args, f"{name}_nats"), getattr(args, f"{name}_store")
        if not nats_url and not store:
            continue
        if not nats_url or not store:
            return fail(f"the {name} site needs both --{name}-nats and --{name}-store")
        if "://" not in store:
            store = str(Path(store).expanduser().resolve())
        sites.append(
            {
                "name": name,
                "nats": nats_url,
                "store": store,
                "s3_endpoint": getattr(args, f"{name}_s3_endpoint"),
                "leaf": getattr(args, f"{name}_leaf"),
            }
        )
    if not sites:
        return fail(
            "give at least one site: --local-nats and --local-store, or --cloud-nats and --cloud-store"
        )
    raw: dict[str, object] = {
        "rig_id": args.rig_id,
        "sites": sites,
        "leaf_port": args.leaf_port,
        "panel_port": args.panel_port,
    }
    if args.creds:
        try:
            seed = Path(args.creds).expanduser().read_bytes()
        except OSError as exc:
            return fail(f"cannot read the rig's key: {exc}")
        key = rig_dir / RIG_KEY
        write_private(key, seed)
        raw["creds"] = str(key.resolve())
    try:  # the same rules as reading rig.toml back
        settings = rig_settings.SETTINGS.read(raw, "rig init", env={})
    except ConfigError as exc:
        return fail(str(exc))
    path = rig_settings.save(rig_dir, settings)
    conf = write_leaf_config(rig_dir, settings)
    print(f"wrote {path} and {conf}; start the rig with `foto3d rig up --dir {rig_dir}`")
    return 0


def _load(args: argparse.Namespace) -> tuple[Path, RigSettings]:
    rig_dir = _rig_dir(args)
    return rig_dir, rig_settings.load(rig_dir)


def cmd_up(args: argparse.Namespace) -> int:
    from foto3d.libs.nats_server import NatsServerError
    from foto3d.rig.leaf import start_leaf
    from foto3d.rig.up import run_agent

    rig_dir, settings = _load(args)
    try:
        leaf = start_leaf(rig_dir, settings)
    except NatsServerError as exc:
        return fail(f"the rig's nats-server did not start: {exc}")
    print(f"rig {settings.rig_id}: local server {leaf.client_url}", flush=True)

    async def main() -> int:
        why = await run_agent(rig_dir, settings, leaf)
        return 0 if why is None else fail(why, 1)

    try:
        return run_async(main)
    finally:
        leaf.stop()


def _fmt_bytes(n: float) -> str:
    return f"{n / 1048576:.1f} MB"


def render_status(st: RigStatus) -> str:
    since = time.strftime("%H:%M:%S", time.localtime(st.since))
    lines = [
        f"rig {st.rig_id}: {st.link.value.upper()} since {since}"
        + (f", sending to {st.site}" if st.site else "")
    ]
    lines.append(f"waiting: {st.logs_waiting} log batch(es), {st.datasets_waiting} dataset(s)")
    if st.upload:
        up = st.upload
        pct = 100 * up.done_bytes / up.total_bytes if up.total_bytes else 100.0
        eta = f", about {up.eta_s:.0f} s left" if up.eta_s is not None else ""
        lines.append(
            f"upload: {up.object_id} {_fmt_bytes(up.done_bytes)} of {_fmt_bytes(up.total_bytes)} ({pct:.0f} %{eta})"
        )
    for s in st.sites:
        state = (
            f"reachable ({s.latency_ms:.0f} ms)"
            if s.reachable and s.latency_ms is not None
            else ("reachable" if s.reachable else f"unreachable{': ' + s.error if s.error else ''}")
        )
        lines.append(f"site {s.name}: {state}")
    if st.problems:
        lines.append("problems (newest first):")
        for p in st.problems[:20]:
            at = time.strftime("%H:%M:%S", time.localtime(p.ts))
            lines.append(f"  {at}  {p.text}")
            lines += [f"          | {d}" for d in p.detail]  # the step's own words
            lines.append(f"          what to do: {p.action}")
    else:
        lines.append("problems: none")
    return "\n".join(lines)


def cmd_status(args: argparse.Namespace) -> int:
    rig_dir, settings = _load(args)
    st = read_status(rig_dir, settings.rig_id)
    if args.json:
        sys.stdout.write(msgspec.json.encode(st).decode() + "\n")
    else:
        print(render_status(st))
    return 0 if st.link == LinkState.ONLINE else 1


def cmd_panel(args: argparse.Namespace) -> int:
    from foto3d.rig.up import run_panel

    rig_dir, settings = _load(args)

    async def main() -> int:
        try:
            await run_panel(rig_dir, settings, args.host, args.port)
        except OSError as exc:
            raise ConfigError(
                f"cannot listen on {args.host}:{args.port or settings.panel_port}: {exc}"
            ) from None
        return 0

    return run_async(main)
