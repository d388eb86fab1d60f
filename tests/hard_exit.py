"""Exit pytest with its real status, skipping interpreter teardown.

temporalio can abort the interpreter at exit ("PyGILState_Release ... finalizing", exit 134/139,
temporalio/sdk-python#300) after every test has finished. The status is remembered at session finish and
the process leaves with os._exit in pytest_unconfigure, after the terminal summary has been printed.
"""

from __future__ import annotations

import os
import sys

import pytest

_status: list[int] = []


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _status.append(int(exitstatus))


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    if not _status or os.environ.get("CONNECTOR_PYTEST_SOFT_EXIT"):
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(_status[-1])
