"""Capture-notes benchmark: search and "lessons from similar objects" over a large catalog.

Builds a catalog store with ``--notes`` notes on ``--objects`` objects of ``--customers``
customers through the store's ingest path (``object.registered/1`` and ``object.note/1``
events, as the bus consumer records them), then measures p50/p95/max latency of the
queries the dashboard and the CLI make, each ``--runs`` times with varied arguments. Tags come
from the starter vocabulary (a small one, so each tag is on many notes): every object has a
shape, material, finish and size, and each note on it carries 2-4 of those plus 0-2 of
lighting, rig, problem and fix.

- full text (one common word, two words, a prefix), tags (one, two), text + tag,
  customer + text, and ``related`` (the object page's lessons) for a tagged object;
- baseline: a primary-key lookup of one note (what any query costs at the least).

    .venv/bin/python bench/bench_notes.py                 # 50,000 notes
    .venv/bin/python bench/bench_notes.py --notes 5000 --runs 50
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from foto3d.proto.notes import FACETS, STARTER_VALUES
from foto3d.proto.objects import ObjectNoted, ObjectRegistered
from foto3d.services.catalog import notes
from foto3d.services.catalog.store import CatalogStore

DOMAIN = [
    "glaze",
    "reflections",
    "softbox",
    "polarised",
    "filter",
    "raised",
    "turntable",
    "markers",
    "rim",
    "handle",
    "base",
    "shadow",
    "highlight",
    "exposure",
    "focus",
    "blur",
    "floaters",
    "holes",
    "mask",
    "background",
    "tripod",
    "lens",
    "aperture",
    "angle",
    "spray",
    "dulling",
    "matte",
    "gloss",
    "glass",
    "metal",
    "wood",
    "leather",
    "fabric",
    "seam",
    "stitching",
    "label",
    "logo",
    "transparent",
    "mirror",
    "chrome",
    "brass",
    "ceramic",
    "porcelain",
    "vase",
    "bowl",
    "lamp",
    "chair",
    "table",
    "bottle",
    "shoe",
]


def _filler(rng: random.Random, n: int) -> list[str]:
    """A few thousand made-up words, so common and rare words both occur as in real text."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    return ["".join(rng.choice(letters) for _ in range(rng.randint(3, 9))) for _ in range(n)]


DESCRIBES = ("shape", "material", "finish", "size")  # what an object is
HAPPENS = ("lighting", "rig", "problem", "fix")  # what happened in one shoot


def _profile(rng: random.Random) -> list[str]:
    return [f"{f}:{rng.choice(STARTER_VALUES[f])}" for f in DESCRIBES]


def _tags(rng: random.Random, profile: list[str]) -> list[str]:
    """Notes on one object describe the same object (2-4 of its descriptive tags) plus 0-2 tags
    of what happened in that shoot."""
    happened = [f"{f}:{rng.choice(STARTER_VALUES[f])}" for f in rng.sample(HAPPENS, rng.randint(0, 2))]
    return rng.sample(profile, rng.randint(2, 4)) + happened


def _events(n_notes: int, n_objects: int, n_customers: int, seed: int) -> tuple[list[Any], list[str]]:
    rng = random.Random(seed)
    words = DOMAIN * 20 + _filler(rng, 3000)  # domain words common, the rest a long tail
    t0 = time.time() - 365 * 86400
    objects = []
    profiles: dict[str, list[str]] = {}
    events: list[Any] = []
    for i in range(n_objects):
        cust = f"cust{i % n_customers}"
        oid = f"{cust}-object-{i:06d}"
        objects.append(oid)
        profiles[oid] = _profile(rng)
        events.append(
            ObjectRegistered(
                event_id=f"registered-{oid}", object_id=oid, ts=t0 + i, customer=cust,
                display_name=f"Object {i}", slug="object", serial=i + 1,
            )
        )  # fmt: skip
    for i in range(n_notes):
        oid = objects[rng.randrange(n_objects)]
        text = " ".join(rng.choice(words) for _ in range(rng.randint(8, 60)))
        events.append(
            ObjectNoted(
                event_id=f"note-{i:032x}", note_id=f"note-{i:032x}", object_id=oid,
                ts=t0 + n_objects + i * 60, actor=f"staff{i % 12}", text=text, tags=_tags(rng, profiles[oid]),
            )
        )  # fmt: skip
    return events, objects


async def _timed(runs: int, make: Callable[[int], Awaitable[Any]]) -> list[float]:
    out = []
    for i in range(runs):
        t = time.perf_counter()
        await make(i)
        out.append((time.perf_counter() - t) * 1000)
    return out


def _row(name: str, ms: list[float], found: float) -> str:
    ms = sorted(ms)
    p95 = ms[max(0, int(len(ms) * 0.95) - 1)]
    return f"| {name} | {statistics.median(ms):.1f} | {p95:.1f} | {ms[-1]:.1f} | {found:.0f} |"


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--notes", type=int, default=50_000)
    ap.add_argument("--objects", type=int, default=10_000)
    ap.add_argument("--customers", type=int, default=200)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()

    events, objects = _events(args.notes, args.objects, args.customers, args.seed)
    rng = random.Random(args.seed + 1)
    with tempfile.TemporaryDirectory() as tmp:
        store = await CatalogStore(Path(tmp) / "catalog.db").open()
        try:
            t = time.perf_counter()
            for start in range(0, len(events), 1000):
                await store.ingest(events[start : start + 1000])
            ingest_s = time.perf_counter() - t
            await store.optimize()
            db = store.db
            print(
                f"{args.notes:,} notes on {args.objects:,} objects of {args.customers} customers; "
                f"ingested (with the objects' registrations) in {ingest_s:.1f} s "
                f"({args.notes / ingest_s:,.0f} notes/s)",
                flush=True,
            )
            tag_pool = [f"{f}:{v}" for f in FACETS for v in STARTER_VALUES[f]]
            found: dict[str, list[int]] = {}

            def search(name: str, **kw: Callable[[int], Any]) -> Callable[[int], Awaitable[Any]]:
                async def run(i: int) -> None:
                    rows = await notes.search(db, limit=50, **{k: f(i) for k, f in kw.items()})
                    found.setdefault(name, []).append(len(rows))

                return run

            async def related(i: int) -> None:
                oid = objects[rng.randrange(len(objects))]
                rows = await notes.related(db, oid, oid.split("-", 1)[0], limit=20)
                found.setdefault("related", []).append(len(rows))

            async def vocabulary(i: int) -> None:
                v = await notes.vocabulary(db)
                found.setdefault("vocabulary", []).append(sum(len(x) for x in v.values()))

            async def by_id(i: int) -> None:
                await notes.get(db, f"note-{rng.randrange(args.notes):032x}")
                found.setdefault("baseline", []).append(1)

            cases: list[tuple[str, str, Callable[[int], Awaitable[Any]]]] = [
                ("baseline", "one note by id (primary key)", by_id),
                ("word", "one common word", search("word", q=lambda i: rng.choice(DOMAIN))),
                ("two words", "two common words", search("two words", q=lambda i: " ".join(rng.sample(DOMAIN, 2)))),
                ("prefix", "a prefix (`refl*`)", search("prefix", q=lambda i: rng.choice(DOMAIN)[:4] + "*")),
                ("tag", "one tag", search("tag", tags=lambda i: [rng.choice(tag_pool)])),
                ("two tags", "two tags", search("two tags", tags=lambda i: rng.sample(tag_pool, 2))),
                ("word + tag", "a word and a tag", search("word + tag", q=lambda i: rng.choice(DOMAIN), tags=lambda i: [rng.choice(tag_pool)])),
                ("customer + word", "a customer's notes with a word", search("customer + word", q=lambda i: rng.choice(DOMAIN), customer=lambda i: f"cust{rng.randrange(args.customers)}")),
                ("related", "lessons for an object (shared tags or customer)", related),
                ("vocabulary", "the tag vocabulary (every page with the form)", vocabulary),
            ]  # fmt: skip
            print("| query | p50 ms | p95 ms | max ms | rows (mean) |")
            print("|---|---:|---:|---:|---:|")
            worst = 0.0
            for name, _, fn in cases:
                ms = await _timed(args.runs, fn)
                print(_row(f"{name}", ms, statistics.mean(found[name])), flush=True)
                if name != "baseline":
                    worst = max(worst, sorted(ms)[max(0, int(len(ms) * 0.95) - 1)])
            print(f"worst p95: {worst:.1f} ms (target < 100 ms)")
            return 0 if worst < 100 else 1
        finally:
            await store.close()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
