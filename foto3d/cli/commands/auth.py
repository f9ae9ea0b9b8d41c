"""`foto3d auth`: the bus's identities: create them, add or revoke a rig or trainer, rotate all;
and `auth tls`: the bus's private CA and its certificates.

Works on an identity folder (``DATA/auth``, the one `foto3d up` uses, or ``--dir``): it
writes each participant's key owner-only and the server's compiled ``authorization.conf``;
``--reload`` then applies it to the data folder's running embedded server (SIGHUP), so a
revocation takes effect within seconds and without a restart. For a deployed server, send
it ``nats-server --signal reload`` after copying the file.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
from pathlib import Path

from foto3d.cli.common import AUTH_DIR, fail, run_async, settings_from, system_options
from foto3d.libs.bus.authconf import write_authorization
from foto3d.libs.bus.identities import IdentityError, IdentityStore
from foto3d.libs.bus.leafcut import reload_and_cut
from foto3d.libs.bus.tls import CA_CERT, CA_KEY, create_ca, issue
from foto3d.libs.config import Settings
from foto3d.libs.discovery import read_endpoints
from foto3d.libs.nats_server import PID_FILE
from foto3d.proto.permissions import ROLES

ORDER = 80
# Inside the identity folder: the private CA (tls/ca) and one folder per certificate.
TLS_DIR = "tls"
CA_DIR = "ca"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "auth",
        parents=[system_options()],
        help="identities on the bus: create, add, revoke, rotate (docs/security.md)",
        description=(
            "Manage the bus's identities (nkeys) and write the server's authorization config. "
            "Keys are written owner-only and never printed; only public keys are shown."
        ),
    )
    p.add_argument("--dir", metavar="DIR", help="identity folder (default DATA/auth)")
    p.add_argument(
        "--reload", action="store_true", help="apply at once to the data folder's running `foto3d up`"
    )
    acts = p.add_subparsers(dest="action", required=True)
    acts.add_parser("init", help="create the site's identities (every service, staff, up) where missing")
    add = acts.add_parser(
        "add",
        help="add a participant, e.g. `add rig r7`, `add trainer gpu1` or a person's own `add staff ana`",
    )
    add.add_argument("role", choices=sorted(ROLES))
    add.add_argument(
        "id", nargs="?", default="", help="the rig's or trainer's id; for staff, the person (their own key)"
    )
    rev = acts.add_parser("revoke", help="revoke one participant, e.g. `revoke rig-r7`")
    rev.add_argument("name")
    acts.add_parser("rotate", help="new keys for every participant (hand them out again)")
    acts.add_parser("list", help="every participant, its role and public key")
    bundle = acts.add_parser(
        "bundle",
        help="one participant's key and TLS certificate in one owner-only JSON file, for a secret store",
        description=(
            "Write NAME's nkey seed and the CA, certificate and key of `auth tls issue CERT` to FILE "
            "(owner-only JSON: nkey, ca, cert, key), e.g. for the cloud trainers' user-data: "
            "`aws secretsmanager put-secret-value --secret-id foto3d/trainer --secret-string file://FILE`, "
            "then delete FILE."
        ),
    )
    bundle.add_argument("name", help="the participant, e.g. trainer-cloud (`auth add trainer cloud`)")
    bundle.add_argument("--tls", metavar="CERT", help="its certificate's name (default: NAME)")
    bundle.add_argument("--out", metavar="FILE", required=True, help="where to write it (owner-only)")
    tls = acts.add_parser(
        "tls",
        help="the bus's private CA and certificates (DIR/tls; keys owner-only)",
        description=(
            "TLS off the host (docs/security.md): `init` creates the site's private CA in DIR/tls/ca; "
            "`issue NAME` a certificate of it for one participant (a server, a route, a rig's "
            "leaf link, a client) in DIR/tls/NAME, with the CA's certificate beside it."
        ),
    )
    tls_acts = tls.add_subparsers(dest="tls_action", required=True)
    tls_acts.add_parser("init", help="create the private CA (kept if it exists)")
    iss = tls_acts.add_parser(
        "issue", help="a certificate for one participant, e.g. `issue nats-1 --host nats.example`"
    )
    iss.add_argument("name", help="the participant (the certificate's common name and file names)")
    iss.add_argument(
        "--host",
        action="append",
        default=[],
        metavar="NAME|IP",
        help="a name or address a server is reached by (repeat); a pure client needs none",
    )
    p.set_defaults(func=cmd_auth)


def cmd_auth(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    folder = Path(args.dir).expanduser() if args.dir else settings.data_dir / AUTH_DIR
    store = IdentityStore(folder)
    if args.action == "tls":
        return cmd_tls(args, folder / TLS_DIR)
    if args.action == "bundle":
        return cmd_bundle(args, store)
    try:
        if args.action == "init":
            store.ensure_site()
        elif args.action == "add":
            ident = store.add(args.role, args.id)
            print(f"{ident.name}: key {store.key_path(ident.name)}")
        elif args.action == "revoke":
            store.revoke(args.name)
        elif args.action == "rotate":
            store.rotate_all()
    except IdentityError as exc:
        return fail(str(exc))
    if args.action == "list":
        for i in store.load():
            print(f"{i.name:24} {i.role:14} {i.public_key}{'  (revoked)' if i.revoked else ''}")
        return 0
    conf = write_authorization(store)
    print(f"wrote {conf}")
    if args.reload:
        return reload_embedded(settings, store)
    return 0


def cmd_tls(args: argparse.Namespace, folder: Path) -> int:
    """``auth tls init|issue``: the CA's key and each certificate's key are written owner-only."""
    ca = folder / CA_DIR
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(folder, 0o700)
    if args.tls_action == "init":
        if (ca / CA_CERT).exists():
            print(f"kept the CA in {ca}")
        else:
            create_ca(ca)
            print(f"created the CA: {ca / CA_CERT} (its key stays in {ca}, owner-only)")
        return 0
    if not (ca / CA_KEY).exists():
        return fail(f"no CA in {ca}: run `foto3d auth tls init` first, or bring your own certificates")
    if args.name == CA_DIR or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", args.name):
        return fail(f"{args.name!r} is not a name for a certificate (letters, digits, . _ -)")
    out = folder / args.name
    files = issue(ca, out, args.name, tuple(args.host))
    os.chmod(out, 0o700)
    print(f"{args.name}: certificate {files.cert}, key {files.key} (owner-only), CA {files.ca}")
    return 0


def cmd_bundle(args: argparse.Namespace, store: IdentityStore) -> int:
    """``auth bundle``: what a participant with no share of the site's disk needs, in one file."""
    ident = store.get(args.name)
    if ident is None or ident.revoked or not store.key_path(args.name).exists():
        return fail(f"no live participant {args.name!r} here (`foto3d auth add ROLE ID` first)")
    cert = args.tls or args.name
    tls = store.folder / TLS_DIR / cert
    files = {"ca": tls / CA_CERT, "cert": tls / f"{cert}.pem", "key": tls / f"{cert}.key"}
    if not all(f.exists() for f in files.values()):
        return fail(f"no certificate {cert!r} in {tls.parent} (`foto3d auth tls issue {cert}` first)")
    body = {"nkey": store.key_path(args.name).read_text().strip()}
    body |= {field: path.read_text() for field, path in files.items()}
    out = Path(args.out).expanduser()
    # Owner-only from its first byte (not write_private: that would also close FILE's folder).
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, json.dumps(body).encode())
    finally:
        os.close(fd)
    print(f"wrote {out} (owner-only: {args.name}'s key and certificate {cert}); delete it once stored")
    return 0


def reload_embedded(settings: Settings, store: IdentityStore) -> int:
    """SIGHUP the data folder's embedded server, then close its leaf links (a revoked rig's)."""
    store_dir = settings.data_dir / "nats"
    ep = read_endpoints(settings.data_dir)
    try:
        pid = int((store_dir / PID_FILE).read_text().strip())
    except (FileNotFoundError, ValueError):
        return fail(f"no running nats-server recorded in {store_dir}")
    if ep is None or not ep.monitor_url:
        return fail(f"no running `foto3d up` on {settings.data_dir}")

    def hup() -> None:
        os.kill(pid, signal.SIGHUP)

    key, _ = store.system_key()
    try:
        cut = run_async(lambda: reload_and_cut(hup, ep.nats_url, ep.monitor_url, key))
    except (ProcessLookupError, TimeoutError, OSError) as exc:
        return fail(f"reloading the nats-server (pid {pid}) failed: {exc}")
    print(f"reloaded the nats-server (pid {pid}); {cut} leaf link(s) asked to reconnect")
    return 0
