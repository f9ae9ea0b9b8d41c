"""One sqlite file a service keeps: opened with its schema, one connection, one writer at a time.

Several small stores (the catalog's subscription book and webhook book, …) need the same
handful of lines; they subclass this and add their queries.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import ClassVar, Self

import aiosqlite


class SqliteFile:
    #: The ``CREATE … IF NOT EXISTS`` script run at every open.
    schema: ClassVar[str]
    #: How errors name the store ("webhook book is not open").
    what: ClassVar[str] = "store"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: aiosqlite.Connection | None = None
        # One connection: interleaved writers would commit each other's half-done changes.
        self._write = asyncio.Lock()

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError(f"{self.what} is not open")
        return self._db

    async def open(self) -> Self:
        self._db = await aiosqlite.connect(self.path)
        self._db.row_factory = aiosqlite.Row
        await self._db.executescript(self.schema)
        await self._db.commit()
        return self

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None
