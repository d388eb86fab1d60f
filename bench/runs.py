"""Where a run keeps its logs and results, and how it stops."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

RESULTS = Path(__file__).resolve().parent / "results"


def timestamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def run_directory(kind: str) -> Path:
    """bench/results/<kind>-<timestamp>/ (git-ignored): the processes' logs of one run."""
    path = RESULTS / f"{kind}-{timestamp()}"
    path.mkdir(parents=True)
    return path


def run_command(main: Callable[[], Coroutine[Any, Any, int]]) -> NoReturn:
    """Run a command's coroutine and exit with its status. SIGTERM unwinds like Ctrl-C, so every
    `finally` (the clusters' cleanup) runs before the exit (130)."""
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        status = asyncio.run(main())
    except KeyboardInterrupt:
        print("interrupted; every process stopped", file=sys.stderr)
        status = 130
    sys.exit(status)
