"""`make run` as a user runs it from a terminal: `connector run` starts its own Temporal dev server and the
sandboxes, the demo orders go through, and Ctrl-C (SIGINT to the terminal's whole process group) stops
everything in order: exit 0, no warning or traceback, no dev server left behind."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import pytest

from connector.cli.servers import TEMPORAL_UI_PORT
from connector.embedded import MARKETPLACE_SANDBOX_PORT, VTEX_SANDBOX_PORT
from tests.test_cli_errors import NO_METRICS

CONNECTOR = Path(sys.executable).with_name("connector")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def fixed_ports_free() -> None:
    """`connector run` serves the sandboxes and the Web UI on fixed ports: a developer's own `make run`
    holds them (CI's machine never does)."""
    held = [port for port in (VTEX_SANDBOX_PORT, MARKETPLACE_SANDBOX_PORT, TEMPORAL_UI_PORT) if _listening(port)]
    if held and os.environ.get("CI") != "true":
        pytest.skip(f"ports {held} are in use (a `make run` of yours?)")
    assert not held, f"ports {held} are in use"


async def test_ctrl_c_stops_make_run_in_order(tmp_path: Path, fixed_ports_free: None) -> None:
    temporal_port = _free_port()
    env = {
        **os.environ,
        **NO_METRICS,
        "DATA_DIR": str(tmp_path / "data"),
        "STORE_URL": f"sqlite:///{tmp_path / 'data' / 'connector.db'}",
        "TEMPORAL_ADDRESS": f"127.0.0.1:{temporal_port}",
        "INTAKE_PORT": "0",
        "CODEC_PORT": str(_free_port()),
        "CONSOLE_PORT": "0",
    }
    for name in ("VTEX_APP_KEY", "VTEX_APP_TOKEN", "VTEX_BASE_URL", "MARKETPLACE_BASE_URL", "CONNECTIONS_FILE"):
        env.pop(name, None)  # the embedded default, whatever the developer's shell has
    # A process group of its own, as a terminal gives a command: Ctrl-C signals the whole group.
    process = await asyncio.create_subprocess_exec(
        str(CONNECTOR),
        "run",
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    assert process.stdout is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(90):
            while "dispatch authorized" not in (line := (await process.stdout.readline()).decode()):
                assert line, "connector run ended before a demo order went through:\n" + "".join(lines)
                lines.append(line)
        os.killpg(process.pid, signal.SIGINT)
        async with asyncio.timeout(60):
            rest, _ = await process.communicate()
    finally:
        if process.returncode is None:
            os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
    output = "".join(lines) + rest.decode()
    assert process.returncode == 0, output
    assert "stopping..." in output
    assert not [line for line in output.splitlines() if "WARN" in line or "Traceback" in line], output
    assert not _listening(temporal_port), "the dev server outlived the connector"
