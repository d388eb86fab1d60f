"""The hard-exit plugin must keep pytest's real exit status (it bypasses interpreter teardown)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(("body", "expected"), [("assert True", 0), ("assert False", 1)])
def test_exit_status_is_preserved(tmp_path: Path, body: str, expected: int) -> None:
    (tmp_path / "test_probe.py").write_text(f"def test_probe():\n    {body}\n")
    env = {k: v for k, v in os.environ.items() if k != "CONNECTOR_PYTEST_SOFT_EXIT"}
    env["PYTHONPATH"] = str(REPO)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "tests.hard_exit",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(tmp_path),
            "-c",
            os.devnull,
            str(tmp_path),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == expected, result.stdout + result.stderr
    # The summary line CI reads is printed before the hard exit.
    assert ("1 passed" if expected == 0 else "1 failed") in result.stdout
