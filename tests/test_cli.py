"""The `connector` command as a user runs it: a separate process, real exit statuses."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from connector.codec import generated_local_key
from connector.models import OrderStatus
from connector.stack import Stack
from connector.store.base import open_store
from connector.store.models import LogStatus
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

    code, out, _ = await connector("logs", "--order", order["id"], env=env, cwd=tmp_path)
    assert code == 0
    assert vtex_id in out and "X3" in out

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


async def test_a_command_without_a_temporal_server_says_so_in_one_sentence(tmp_path: Path) -> None:
    env = {"TEMPORAL_ADDRESS": "127.0.0.1:1", "DATA_DIR": str(tmp_path / "data")}  # nothing listens on port 1
    generated_local_key(tmp_path / "data")  # the folder `make run` ran in: the key is there
    for command in (["status", "1001"], ["import", "1001"], ["reprocess", "1001"], ["cancel", "1001"]):
        code, _, err = await connector(*command, env=env, cwd=tmp_path)
        assert code == 1, command
        assert "Traceback" not in err
        assert err.strip().splitlines()[-1].startswith("connector: cannot reach Temporal at 127.0.0.1:1: start"), err
