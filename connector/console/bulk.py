"""Bulk reprocess by filter, the console's side: start the job's workflow (workflows/bulk_reprocess.py), and
read the job back for its page.

The workflow lists the orders, signals them and follows each through to done or failed; the console only
starts it and asks it. So the job goes on, and its page answers, after the console restarted or went away
right after the seller confirmed (connector/bulk_reprocess.py has the job and its progress).
"""

from __future__ import annotations

import re
import secrets
from datetime import timedelta

from temporalio.client import Client, WorkflowQueryFailedError
from temporalio.service import RPCError, RPCStatusCode

from connector.bulk_reprocess import BulkJob, BulkReprocessInput, bulk_workflow_id
from connector.console.filters import REPROCESSABLE_VALUES, OrderFilter
from workflows.bulk_reprocess import BulkReprocessWorkflow

QUERY_TIMEOUT = timedelta(seconds=5)
# The ids `start_bulk_job` makes: anything else names no job, and is not asked of Temporal.
_JOB_ID = re.compile(r"^[0-9a-f]{16}$")


class JobUnanswered(RuntimeError):
    """The job's workflow exists but did not answer its query (no worker running, or a slow one)."""


async def start_bulk_job(client: Client, selected: OrderFilter, *, reason: str, task_queue: str) -> str:
    """Start the job over the orders the preview counted (the same visibility query); its id."""
    job_id = secrets.token_hex(8)
    await client.start_workflow(
        BulkReprocessWorkflow.run,
        BulkReprocessInput(
            job_id=job_id, filter=selected.params(), query=selected.query(REPROCESSABLE_VALUES), reason=reason
        ),
        id=bulk_workflow_id(job_id),
        task_queue=task_queue,
    )
    return job_id


async def bulk_job(client: Client, job_id: str) -> BulkJob | None:
    """The job as its workflow keeps it; None when there is no such job (unknown, or past Temporal's
    retention); JobUnanswered when it does not answer now."""
    if not _JOB_ID.match(job_id):
        return None
    handle = client.get_workflow_handle_for(BulkReprocessWorkflow.run, bulk_workflow_id(job_id))
    try:
        return await handle.query(BulkReprocessWorkflow.status, rpc_timeout=QUERY_TIMEOUT)
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return None
        raise JobUnanswered(str(exc)) from exc
    except WorkflowQueryFailedError as exc:
        raise JobUnanswered(str(exc)) from exc
