"""A TCP link that a test can cut: a small proxy in front of a real server."""

from __future__ import annotations

import asyncio
import contextlib


class CuttableLink:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.server: asyncio.Server | None = None
        self.port = 0
        self.up = True
        self.sent = 0  # bytes client -> server since the last cut_after()
        self._budget: int | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> CuttableLink:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    def cut_after(self, n_bytes: int) -> None:
        self.sent, self._budget = 0, n_bytes

    def cut(self) -> None:
        self.up = False
        for w in list(self._writers):
            w.close()

    def restore(self) -> None:
        self.up, self._budget = True, None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.up:
            writer.close()
            return
        try:
            up_r, up_w = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_w}
        t1 = asyncio.create_task(self._pipe(reader, up_w, count=True))
        t2 = asyncio.create_task(self._pipe(up_r, writer, count=False))
        self._tasks |= {t1, t2}
        await asyncio.gather(t1, t2, return_exceptions=True)
        self._tasks -= {t1, t2}
        self._writers -= {writer, up_w}

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, count: bool) -> None:
        try:
            while data := await src.read(65536):
                if count:
                    self.sent += len(data)
                    if self._budget is not None and self.sent > self._budget:
                        self.cut()
                        return
                dst.write(data)
                await dst.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                dst.close()

    async def stop(self) -> None:
        self.cut()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
