"""How a long-running `connector` command waits for its end."""

from __future__ import annotations

import asyncio
import signal


async def until_stopped() -> None:
    """Wait for Ctrl-C, SIGTERM (a container stop) or SIGHUP (its terminal closed): the caller then shuts
    down in order."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    print("stopping...", flush=True)
