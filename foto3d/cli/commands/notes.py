"""`foto3d objects note|notes|note-tags`: capture notes from the command line (over the bus)."""

from __future__ import annotations

import argparse
import base64
from pathlib import Path
from typing import Any

from foto3d.cli.commands.objects import catalog_call, run_catalog
from foto3d.cli.common import add_actor_option, fail
from foto3d.cli.output import print_json, print_table, utc_time
from foto3d.libs.bus.connection import Bus
from foto3d.proto import notes
from foto3d.proto.notes import FACETS, MAX_PHOTO_BYTES


def cmd_note(args: argparse.Namespace) -> int:
    photos = []
    total = 0
    for name in args.photo or []:
        path = Path(name)
        if not path.is_file():
            return fail(f"photo {path} does not exist")
        total += path.stat().st_size
        if total > MAX_PHOTO_BYTES:
            return fail(f"a note's photos together must stay under {MAX_PHOTO_BYTES // 1024} KiB")
        photos.append({"name": path.name, "b64": base64.b64encode(path.read_bytes()).decode()})
    body: dict[str, Any] = {
        "object_id": args.object_id,
        "text": args.text or "",
        "tags": args.tag or [],
        "photos": photos,
        "new_tags": args.new_tags,
        "actor": args.actor,
    }

    async def go(bus: Bus) -> int:
        n = await catalog_call(bus, notes.NOTE, body)
        print(f"{n['object_id']}: noted {n['note_id']}" + (f" [{' '.join(n['tags'])}]" if n["tags"] else ""))
        return 0

    return run_catalog(args, go)


def _print_notes(rows: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        print_json(rows)
        return
    print_table(
        [
            [utc_time(n["ts"]), n["object_id"], n["actor"] or "-", " ".join(n["tags"]), n["text"][:60]]
            for n in rows
        ],
        ["when (utc)", "object", "who", "tags", "text"],
    )


def cmd_notes(args: argparse.Namespace) -> int:
    async def go(bus: Bus) -> int:
        if args.related:
            rows = await catalog_call(
                bus, notes.NOTES_RELATED, {"object_id": args.related, "limit": args.limit}
            )
        else:
            query = {"q": " ".join(args.words), "tags": args.tag or [], "limit": args.limit}
            if args.customer:
                query["customer"] = args.customer
            if args.object:
                query["object_id"] = args.object
            rows = await catalog_call(bus, notes.NOTES, query)
        _print_notes(rows, args.json)
        return 0

    return run_catalog(args, go)


def cmd_note_tags(args: argparse.Namespace) -> int:
    async def go(bus: Bus) -> int:
        vocab = await catalog_call(bus, notes.NOTE_TAGS, {})
        if args.json:
            print_json(vocab)
        else:
            for facet in FACETS:
                print(f"{facet}: {', '.join(vocab.get(facet, []))}")
        return 0

    return run_catalog(args, go)


def add_actions(
    osub: argparse._SubParsersAction[argparse.ArgumentParser], common: list[argparse.ArgumentParser]
) -> None:
    """The notes actions under `foto3d objects`."""
    p = osub.add_parser(
        "note",
        parents=common,
        help="write a capture note on an object: what you learned, tagged",
        description="Write a capture note on an object: free text, tags (facet:value; facets: "
        + ", ".join(FACETS)
        + ") and photos. A tag value nobody used yet needs --new-tags (it then joins the vocabulary).",
    )
    p.add_argument("object_id")
    p.add_argument("--text", help="what happened and what worked")
    p.add_argument(
        "--tag", action="append", metavar="FACET:VALUE", help="a tag, e.g. material:glass (repeat)"
    )
    p.add_argument(
        "--photo", action="append", metavar="FILE", help="a PNG/JPEG/WebP photo (repeat; 700 KiB together)"
    )
    p.add_argument("--new-tags", action="store_true", help="accept tag values not in the vocabulary yet")
    add_actor_option(p)
    p.set_defaults(func=cmd_note)

    p = osub.add_parser(
        "notes",
        parents=common,
        help="search capture notes (words and tags), or those related to an object",
        description="Search capture notes: every word must occur in the text or the tags (word* is a "
        "prefix), every --tag must be on the note. With --related OBJECT: the notes of other objects "
        "sharing its tags or customer, best matches first.",
    )
    p.add_argument("words", nargs="*", help="words to find")
    p.add_argument("--tag", action="append", metavar="FACET:VALUE", help="only notes with this tag (repeat)")
    p.add_argument("--customer", help="only notes on this customer's objects")
    p.add_argument("--object", metavar="OBJECT_ID", help="only notes on this object")
    p.add_argument("--related", metavar="OBJECT_ID", help="notes of objects similar to this one")
    p.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_notes)

    p = osub.add_parser("note-tags", parents=common, help="the tag vocabulary of capture notes")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_note_tags)
