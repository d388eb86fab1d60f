"""Child processes for benchmarks and fault tests: each in its own process group, logged to a file, and
killed with its whole group however the parent ends (try/finally, SIGTERM, or even the parent's kill -9)."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import os
import signal
from collections.abc import Mapping, Sequence
from pathlib import Path

PR_SET_PDEATHSIG = 1
# Resolved before any fork: the child must not load libraries between fork and exec.
_LIBC = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


def _die_with_parent() -> None:
    """Runs in the child before exec: the kernel kills it if the parent dies without cleaning up."""
    _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class ProcessFailed(RuntimeError):
    pass


class ManagedProcess:
    """One command, restartable; its output is appended to `log_file`."""

    def __init__(self, name: str, command: Sequence[str], *, env: Mapping[str, str], cwd: Path, log_file: Path) -> None:
        self.name = name
        self.command = list(command)
        self.env = dict(env)
        self.cwd = cwd
        self.log_file = log_file
        self._process: asyncio.subprocess.Process | None = None
        self._start_offset = 0

    @property
    def pid(self) -> int:
        if self._process is None:
            raise ProcessFailed(f"{self.name} is not running")
        return self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    async def start(self, env: Mapping[str, str] | None = None) -> None:
        if self.running:
            raise ProcessFailed(f"{self.name} is already running")
        if env is not None:
            self.env = dict(env)
        with self.log_file.open("ab") as log:
            log.write(f"--- start {' '.join(self.command)}\n".encode())
            log.flush()
            self._start_offset = log.tell()
            self._process = await asyncio.create_subprocess_exec(
                *self.command,
                env=self.env,
                cwd=self.cwd,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )

    async def stop(self, grace: float = 10.0) -> None:
        """SIGTERM to the group (the connector shuts down in order), SIGKILL if it takes too long."""
        if self._process is None:
            return
        if self.running:
            self._signal_group(signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wait(), grace)
        # Also whatever the leader left behind in its group.
        await self.kill()

    async def kill(self) -> None:
        """kill -9 the whole group: no shutdown code runs."""
        if self._process is None:
            return
        self._signal_group(signal.SIGKILL)
        await self._wait()

    def check_alive(self) -> None:
        if not self.running:
            raise ProcessFailed(f"{self.name} exited; last lines of {self.log_file}:\n{self.tail()}")

    def since_start(self) -> str:
        """Everything this process wrote since its last start (a busy worker logs many lines at once)."""
        try:
            with self.log_file.open("rb") as log:
                log.seek(self._start_offset)
                return log.read().decode(errors="replace")
        except OSError:
            return ""

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def status_kib(self, field: str) -> int:
        """A /proc/<pid>/status memory field (VmHWM, VmRSS) in KiB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
        raise ProcessFailed(f"no {field} for {self.name}")

    def cpu_seconds(self) -> float:
        """User plus system CPU time the process used so far (/proc/<pid>/stat)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rpartition(")")[2].split()
        # utime and stime are fields 14 and 15 of stat(5); the split starts at field 3.
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def _signal_group(self, sig: signal.Signals) -> None:
        assert self._process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._process.pid, sig)

    async def _wait(self) -> None:
        assert self._process is not None
        await self._process.wait()
