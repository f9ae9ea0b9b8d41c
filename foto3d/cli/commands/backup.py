"""`foto3d backup DIR` and `foto3d restore DIR`: every sqlite database of a data folder.

Backup runs beside a working system (sqlite's online backup API); restore needs it stopped.
Runbook: docs/runbooks/backup-restore.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from foto3d.cli.common import fail, settings_from, system_options
from foto3d.libs.config import ConfigError
from foto3d.libs.storage.sqlite_backup import BackupError, backup, listing, restore

ORDER = 62


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "backup",
        parents=[system_options()],
        help="copy every sqlite database of the data folder into DIR, while the system runs",
        description=(
            "Copy every sqlite database under the data folder (catalog, gateway, log store, notifier, "
            "queue, staff users) into DIR, each as one consistent snapshot taken with sqlite's online "
            "backup API while the services keep writing, checked with PRAGMA integrity_check, with a "
            "manifest of sizes and SHA-256 sums. DIR must be new or empty. The NATS store is not "
            "included (see docs/runbooks/backup-restore.md)."
        ),
    )
    p.add_argument("dir", help="folder to write the backup into (new or empty)")
    p.set_defaults(func=cmd_backup)
    r = sub.add_parser(
        "restore",
        parents=[system_options()],
        help="put the databases of a backup back into the data folder (system stopped)",
        description=(
            "Check a backup against its manifest, then write each database into the data folder through "
            "sqlite (replacing the current one). Stop `foto3d up` (and any `foto3d serve` on this data "
            "folder) first: a running service would write over the restored file."
        ),
    )
    r.add_argument("dir", help="a folder written by `foto3d backup`")
    r.set_defaults(func=cmd_restore)


def cmd_backup(args: argparse.Namespace) -> int:
    data = settings_from(args).data_dir
    try:
        copied = backup(data, Path(args.dir))
    except (BackupError, OSError) as exc:
        return fail(str(exc))
    print(f"backed up {len(copied)} database(s) from {data} into {args.dir}")
    for line in listing(copied):
        print(line)
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from foto3d.app.up import DataDirLock  # here: the other commands need not load the app

    data = settings_from(args).data_dir
    data.mkdir(parents=True, exist_ok=True)
    try:
        with DataDirLock(data):  # refuses while `foto3d up` runs on this folder
            restored = restore(Path(args.dir), data)
    except ConfigError as exc:
        return fail(f"{exc} (restore needs the system stopped)")
    except (BackupError, OSError) as exc:
        return fail(str(exc))
    print(f"restored {len(restored)} database(s) from {args.dir} into {data}")
    for line in listing(restored):
        print(line)
    return 0
