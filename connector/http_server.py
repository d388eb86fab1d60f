"""Run ASGI apps on uvicorn inside the caller's event loop, several per process.

The caller owns signal handling (Ctrl-C stops the whole stack in order), so uvicorn's own signal
capture is turned off.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
from collections.abc import Generator
from types import TracebackType

import uvicorn
from starlette.types import ASGIApp


class _QuietServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class PortUnavailable(Exception):
    """The server cannot listen where it is configured to; the message is one sentence for the operator."""


class HttpServer:
    """`async with HttpServer(app, port=0) as server:` serves until the block ends.

    `server.url` says where it listens (port 0 picks a free port). `setting` names the variable that sets
    the port, for the message when the port is taken (PortUnavailable).
    """

    def __init__(
        self, app: ASGIApp, *, host: str = "127.0.0.1", port: int = 0, name: str = "http", setting: str | None = None
    ) -> None:
        self._config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, lifespan="off")
        self._server = _QuietServer(self._config)
        self._host = host
        self._name = name
        self._setting = setting
        self._task: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        return self._name

    @property
    def port(self) -> int:
        sockets = self._server.servers[0].sockets
        return int(sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    async def start(self) -> None:
        # Bound here rather than by uvicorn, which logs the error and exits the process when it cannot.
        address = (self._host, self._config.port)
        # IPPROTO_TCP named: asyncio turns Nagle off (TCP_NODELAY) only on connections whose socket says so,
        # and with Nagle on every response waits on the client's delayed ACK (+40 ms per call, measured).
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
        except OSError as exc:
            sock.close()
            raise PortUnavailable(self._unavailable(exc)) from None
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name=self._name)
        while not self._server.started:
            if self._task.done():
                self._task.result()  # re-raise why it could not start (e.g. port in use)
                raise RuntimeError(f"{self._name} server stopped during start-up")
            await asyncio.sleep(0.01)

    def _unavailable(self, exc: OSError) -> str:
        where = f"{self._host}:{self._config.port}"
        remedy = f"set {self._setting} to a free port" if self._setting else "free that port"
        if exc.errno == errno.EADDRINUSE:
            return f"the {self._name} cannot listen on {where}: the port is in use (stop what holds it, or {remedy})"
        return f"the {self._name} cannot listen on {where}: {exc.strerror or exc} ({remedy})"

    async def stop(self) -> None:
        if self._task is None:
            return
        self._server.should_exit = True
        await self._task
        self._task = None

    async def __aenter__(self) -> HttpServer:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
