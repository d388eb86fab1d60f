"""The `connector` command as a user runs it: a separate process, real exit statuses."""

from __future__ import annotations

import asyncio
import io
import json
import os
import sys
from datetime import datetime
from pathlib import Path

from rich.console import Console
from temporalio.testing import WorkflowEnvironment

from connector.cli.common import plain
from connector.cli.logs import log_table
from connector.codec import generated_local_key
from connector.console.filters import NEEDS_ACTION_VALUES
from connector.embedded import Sandboxes
from connector.models import OrderStatus, order_workflow_id
from connector.stack import Stack
from connector.store.base import open_store
from connector.store.models import LogStatus
from tests.console_support import park_with_price_divergence
from tests.helpers import wait_for_state
from tests.test_store import ACCOUNT, message

REPO = Path(__file__).resolve().parents[1]


async def connector(*args: str, env: dict[str, str], cwd: Path) -> tuple[int, str, str]:
    # Asynchronous on purpose: the worker answering `status` queries runs in this event loop.
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "connector.cli",
        *args,
        env={**os.environ, "PYTHONPATH": str(REPO), **env},
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


def cli_env(stack: Stack, temporal_env: WorkflowEnvironment) -> dict[str, str]:
    return {
        "TEMPORAL_ADDRESS": temporal_env.client.service_client.config.target_host,
        "CONNECTION_NAME": "reference",
        "STORE_URL": stack.settings.store_url,
        "DATA_DIR": str(stack.settings.data_dir),  # the payload key: the CLI's client decrypts with it
    }


async def test_status_logs_and_reprocess_commands(
    stack: Stack, temporal_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    assert stack.sandboxes is not None
    order = stack.sandboxes.marketplace.new_order(items=[("1", 1)])
    stack.sandboxes.marketplace.notify(order["id"])
    await wait_for_state(stack.client, "reference", order["id"], lambda s: s.status is OrderStatus.DISPATCH_AUTHORIZED)
    env = cli_env(stack, temporal_env)

    code, out, _ = await connector("status", order["id"], env=env, cwd=tmp_path)
    assert code == 0
    vtex_id = f"MKP-{order['id']}{stack.sandboxes.vtex.order_id_suffix}"
    assert "dispatch-authorized" in out and vtex_id in out and "authorize" in out

    code, out, _ = await connector("status", order["id"], "--json", env=env, cwd=tmp_path)
    assert code == 0
    state = json.loads(out)
    assert state["status"] == "dispatch-authorized" and state["vtex_order_id"] == vtex_id
    assert any(entry["step"] == "authorize" for entry in state["timeline"])
    datetime.fromisoformat(state["timeline"][0]["at"])

    code, out, _ = await connector("logs", "--order", order["id"], env=env, cwd=tmp_path)
    assert code == 0
    assert vtex_id in out and "X3" in out

    code, out, _ = await connector("logs", "--order", order["id"], "--json", env=env, cwd=tmp_path)
    assert code == 0
    lines = json.loads(out)
    assert lines and {line["marketplace_order_id"] for line in lines} == {order["id"]}
    assert "X3" in {line["code"] for line in lines} and vtex_id in {line["vtex_order_id"] for line in lines}
    assert {"operation", "direction", "business_message", "status", "content_source", "created_at"} <= set(lines[0])

    code, _, err = await connector("status", "no-such-order", env=env, cwd=tmp_path)
    assert code == 1 and "no order no-such-order" in err

    code, _, err = await connector("reprocess", env=env, cwd=tmp_path)
    assert code == 2 and "--status" in err


async def test_cancel_notes_the_cancel_in_the_store_then_cancels_the_order(
    stack: Stack, temporal_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    assert stack.sandboxes is not None and stack.store is not None
    order = stack.sandboxes.marketplace.new_order(items=[("1", 1)])
    stack.sandboxes.marketplace.notify(order["id"])
    await wait_for_state(stack.client, "reference", order["id"], lambda s: s.status is OrderStatus.DISPATCH_AUTHORIZED)
    env = cli_env(stack, temporal_env)
    before = (await stack.store.handoffs("reference", [order["id"]]))[order["id"]].notified_at

    code, out, _ = await connector("cancel", order["id"], env=env, cwd=tmp_path)
    assert code == 0 and f"cancel requested for order {order['id']}" in out
    # Noted before the signal: a local placement or authorization still running would stop for it.
    after = (await stack.store.handoffs("reference", [order["id"]]))[order["id"]].notified_at
    assert after is not None and (before is None or after > before)
    await wait_for_state(stack.client, "reference", order["id"], lambda s: s.status is OrderStatus.CANCELED)

    code, _, err = await connector("cancel", "no-such-order", env=env, cwd=tmp_path)
    assert code == 1 and err.startswith("connector: no running order no-such-order for connection reference: ")


async def test_a_bad_setting_stops_the_command_naming_the_variable(tmp_path: Path) -> None:
    code, _, err = await connector("status", "1", env={"VTEX_AFFILIATE_ID": "TOOLONG"}, cwd=tmp_path)
    assert code == 2 and "VTEX_AFFILIATE_ID" in err


async def test_logs_show_and_filter_the_connection(tmp_path: Path) -> None:
    store_url = f"sqlite:///{tmp_path / 'orders.db'}"
    store = open_store(store_url)
    # Two marketplaces that both number an order 1001.
    await store.write_log(message("ref", connection="reference", business_message="from the reference"))
    await store.write_log(
        message("other", connection="acme-market", status=LogStatus.ERROR, business_message="from acme")
    )
    await store.aclose()
    env = {"STORE_URL": store_url, "VTEX_ACCOUNT": ACCOUNT}

    code, out, _ = await connector("logs", "--date", "2024-05-01", env=env, cwd=tmp_path)
    assert code == 0
    header, *lines = out.splitlines()
    assert "CONNECTION" in header
    assert len(lines) == 2 and all(" 1001 " in line for line in lines)
    assert any("acme-market" in line and line.endswith("from acme") for line in lines)
    assert any("reference" in line and line.endswith("from the reference") for line in lines)

    code, out, _ = await connector("logs", "--date", "2024-05-01", "--connection", "acme-market", env=env, cwd=tmp_path)
    assert code == 0
    assert "from acme" in out and "from the reference" not in out

    code, out, _ = await connector(
        "logs", "--date", "2024-05-01", "--connection", "acme-market", "--status", "success", env=env, cwd=tmp_path
    )
    assert code == 0 and out.strip() == "no log messages"

    code, out, _ = await connector("logs", "--date", "2024-05-01", "--json", env=env, cwd=tmp_path)
    assert code == 0
    assert sorted(line["connection"] for line in json.loads(out)) == ["acme-market", "reference"]
    code, out, _ = await connector("logs", "--date", "2024-05-02", "--json", env=env, cwd=tmp_path)
    assert (code, json.loads(out)) == (0, [])


def test_the_log_table_is_one_line_per_message_with_payloads_when_verbose() -> None:
    messages = [
        message("op-1", business_message="created\nin VTEX"),
        message("op-2", code="I", status=LogStatus.ERROR, vtex_order_id=None, content_source=""),
    ]
    pipe = Console(file=io.StringIO())  # not a terminal: plain columns, as `connector logs | grep` sees them
    table = plain(log_table(pipe, messages)).splitlines()
    assert table[0].startswith("TIME (UTC)           CODE  STATUS   CONNECTION  MARKETPLACE ORDER")
    assert len(table) == 3
    assert table[1].startswith("2024-05-01 12:00:00  A     Success  reference   1001")
    assert table[1].endswith("created in VTEX")
    assert "Error" in table[2] and " - " in table[2] and '{"id"' not in "\n".join(table)
    verbose = plain(log_table(pipe, messages, verbose=True))
    assert verbose.count('source: {"id": "1001"}') == 1 and len(verbose.splitlines()) == 4


async def test_orders_lists_what_needs_action_with_the_consoles_filters(
    stack: Stack, temporal_env: WorkflowEnvironment, box: Sandboxes, tmp_path: Path
) -> None:
    order_id = await park_with_price_divergence(stack, box)
    env = cli_env(stack, temporal_env)

    code, out, err = await connector("orders", "--search", order_id, env=env, cwd=tmp_path)
    assert code == 0, err
    by_status, by_code, header, *rows = out.splitlines()
    assert by_status == "by status:     parked 1" and by_code == "by error code: FMT007 1"
    for column in ("MARKETPLACE ORDER", "VTEX ORDER", "CONNECTION", "STATUS", "ERROR CODE", "WHAT TO DO"):
        assert column in header
    assert "LAST ATTEMPT" in header and "ATTEMPTS" in header and "CREATED" in header
    (row,) = rows
    assert row.startswith(order_id) and " reference " in row and " parked " in row and " FMT007 " in row
    assert "99.90" in row  # the seller's action in the order's own words, with both prices

    code, out, _ = await connector("orders", "--code", "ORD027", "--search", order_id, env=env, cwd=tmp_path)
    assert code == 0 and order_id not in out and "no order needs action with these filters" in out

    code, out, _ = await connector("orders", "--code", "FMT007", "--json", env=env, cwd=tmp_path)
    assert code == 0
    (listed,) = [row for row in json.loads(out) if row["marketplace_order_id"] == order_id]
    assert listed["status"] == "parked" and listed["error_code"] == "FMT007" and listed["connection"] == "reference"
    assert listed["workflow_id"] == order_workflow_id("reference", order_id) and "99.90" in listed["action"]
    assert isinstance(listed["attempts"], int) and datetime.fromisoformat(listed["created_at"]).tzinfo is not None
    datetime.fromisoformat(listed["last_attempt"])

    code, out, _ = await connector("orders", "--all", "--status", "parked", "--json", env=env, cwd=tmp_path)
    assert code == 0 and order_id in {row["marketplace_order_id"] for row in json.loads(out)}

    # Bulk reprocess: the ids with --json (the fault is still there, so the order parks again).
    code, out, err = await connector("reprocess", "--code", "FMT007", "--json", env=env, cwd=tmp_path)
    assert code == 0, err
    assert order_workflow_id("reference", order_id) in json.loads(out)
    code, out, _ = await connector("reprocess", "--code", "NO-SUCH-CODE", env=env, cwd=tmp_path)
    assert (code, out) == (0, "reprocess requested for 0 order(s)\n")


async def test_a_filter_orders_cannot_search_for_is_one_line_and_status_2(tmp_path: Path) -> None:
    env = {"TEMPORAL_ADDRESS": "127.0.0.1:1"}  # refused before Temporal is reached
    cases = {
        ("--status", "lost"): f"connector: --status: one of {', '.join(NEEDS_ACTION_VALUES)}",
        ("--created-from", "yesterday"): "connector: --created-from: a date like 2026-12-01",
        ("--search", "1' OR '1'='1"): "connector: --search: only letters, digits and . _ : @ / - are allowed",
        ("--limit", "0"): "connector: --limit 0: give a number from 1 to 1000, or --all",
    }
    for words, line in cases.items():
        code, out, err = await connector("orders", *words, env=env, cwd=tmp_path)
        assert (code, out, err) == (2, "", line + "\n"), words


async def test_a_command_without_a_temporal_server_says_so_in_one_sentence(tmp_path: Path) -> None:
    env = {"TEMPORAL_ADDRESS": "127.0.0.1:1", "DATA_DIR": str(tmp_path / "data")}  # nothing listens on port 1
    generated_local_key(tmp_path / "data")  # the folder `make run` ran in: the key is there
    for command in (["status", "1001"], ["import", "1001"], ["reprocess", "1001"], ["cancel", "1001"]):
        code, _, err = await connector(*command, env=env, cwd=tmp_path)
        assert code == 1, command
        assert "Traceback" not in err
        assert err.strip().splitlines()[-1].startswith("connector: cannot reach Temporal at 127.0.0.1:1: start"), err
