"""Everywhere a user of the `connector` command can land on a problem they can fix, the command says in one
line what is wrong and what to do, exits non-zero and shows no traceback: wrong folder, missing key,
unreachable Temporal, unknown order, unknown connection, bad configuration, a store that cannot be opened,
a port in use. Each case runs the real command in a process of its own (tests/test_cli.py's helper)."""

from __future__ import annotations

import base64
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from connector.codec import generated_local_key
from connector.models import OrderStatus
from connector.stack import Stack
from tests.helpers import wait_for_state
from tests.test_cli import cli_env, connector

UNREACHABLE = "127.0.0.1:1"  # nothing listens on port 1
# Every port of its own off, so that a command under test takes nothing another test or `make run` holds.
NO_METRICS = {"METRICS_PORT": "0", "TEMPORAL_METRICS_PORT": "0", "INTAKE_METRICS_PORT": "0"}


def one_sentence(code: int, out: str, err: str) -> str:
    """The one line the user sees (asserted: non-zero status, one stderr line `connector: ...`, no traceback)."""
    assert code != 0, (out, err)
    assert "Traceback" not in out + err, err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("connector: "), err
    return lines[0]


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A loopback port something else listens on."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield int(holder.getsockname()[1])


async def test_a_command_run_from_another_folder_names_the_file_it_needs_and_makes_none(tmp_path: Path) -> None:
    env = {"TEMPORAL_ADDRESS": UNREACHABLE}
    for command in (["status", "1001"], ["cancel", "1001"], ["reprocess", "1001"], ["import", "1001"]):
        line = one_sentence(*await connector(*command, env=env, cwd=tmp_path))
        assert line.startswith(f"connector: no payload key at {tmp_path / 'data' / 'payload-key'}: run this"), line
        assert "`make run`" in line and "DATA_DIR" in line and "PAYLOAD_ENCRYPTION_KEYS" in line
    line = one_sentence(*await connector("codec-server", env={**env, "CODEC_PORT": "0"}, cwd=tmp_path))
    assert line.startswith(f"connector: no payload key at {tmp_path / 'data' / 'payload-key'}: run this"), line
    for reader in ("logs", "console"):
        line = one_sentence(*await connector(reader, env={**env, "CONSOLE_PORT": "0"}, cwd=tmp_path))
        assert line.startswith(f"connector: no order store at {tmp_path / 'data' / 'connector.db'} (STORE_URL)")
    assert not (tmp_path / "data").exists()  # no new key, no new empty store


async def test_a_key_that_is_not_the_connectors_is_named_with_the_setting_to_fix(
    stack: Stack, temporal_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    assert stack.sandboxes is not None
    order = stack.sandboxes.marketplace.new_order(items=[("1", 1)])
    stack.sandboxes.marketplace.notify(order["id"])
    await wait_for_state(stack.client, "reference", order["id"], lambda s: s.status is OrderStatus.DISPATCH_AUTHORIZED)
    env = cli_env(stack, temporal_env)

    other = {**env, "PAYLOAD_ENCRYPTION_KEYS": f"other:{base64.b64encode(os.urandom(32)).decode()}"}
    line = one_sentence(*await connector("status", order["id"], env=other, cwd=tmp_path))
    assert "key 'local-1', which is not configured here: add that key to PAYLOAD_ENCRYPTION_KEYS" in line, line

    generated_local_key(tmp_path / "elsewhere")  # another folder's own generated key, under the same id
    elsewhere = {**env, "DATA_DIR": str(tmp_path / "elsewhere")}
    line = one_sentence(*await connector("status", order["id"], env=elsewhere, cwd=tmp_path))
    assert "key 'local-1' fails authentication" in line and "DATA_DIR" in line, line


async def test_unreachable_temporal_is_one_sentence_for_every_command(tmp_path: Path) -> None:
    generated_local_key(tmp_path / "data")
    env = {"TEMPORAL_ADDRESS": UNREACHABLE, **NO_METRICS}
    commands = (["status", "1001"], ["cancel", "1001"], ["reprocess", "1001"], ["import", "1001"])
    for command in (*commands, ["reprocess", "--status", "parked"], ["worker"], ["intake"]):
        line = one_sentence(*await connector(*command, env=env, cwd=tmp_path))
        assert line.startswith("connector: cannot reach Temporal at 127.0.0.1:1: start the connector"), command


async def test_a_namespace_the_server_does_not_have_is_one_sentence(
    temporal_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    generated_local_key(tmp_path / "data")
    address = temporal_env.client.service_client.config.target_host
    env = {"TEMPORAL_ADDRESS": address, "TEMPORAL_NAMESPACE": "no-such-namespace"}
    for command in (["status", "1001"], ["import", "1001", "--no-wait"], ["reprocess", "--status", "parked"]):
        line = one_sentence(*await connector(*command, env=env, cwd=tmp_path))
        assert line == (
            f"connector: Temporal at {address} has no namespace 'no-such-namespace': check TEMPORAL_NAMESPACE, "
            "or create it (temporal operator namespace create)"
        ), line


async def test_an_unknown_order_is_one_sentence(
    stack: Stack, temporal_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    env = cli_env(stack, temporal_env)
    for command, expected in (
        ("status", "connector: no order no-such-order for connection reference: give the marketplace's order id"),
        ("reprocess", "connector: no order no-such-order for connection reference: give"),
        ("cancel", "connector: no running order no-such-order for connection reference: give"),
    ):
        line = one_sentence(*await connector(command, "no-such-order", env=env, cwd=tmp_path))
        assert line.startswith(expected), line


async def test_an_unknown_connection_is_one_sentence(tmp_path: Path) -> None:
    env = {"TEMPORAL_ADDRESS": UNREACHABLE}  # refused before anything is reached
    for command in (["status", "1001"], ["cancel", "1001"], ["reprocess", "1001"], ["reprocess", "--status", "parked"]):
        line = one_sentence(*await connector(*command, "--connection", "nope", env=env, cwd=tmp_path))
        assert line == "connector: no connection 'nope' is configured (--connection); the configured ones: reference"


async def test_a_malformed_env_file_or_a_missing_setting_is_one_sentence(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("INTAKE_PORT=eighty\n")
    line = one_sentence(*await connector("status", "1001", env={}, cwd=tmp_path))
    assert line.startswith("connector: invalid configuration: INTAKE_PORT: ") and str(tmp_path / ".env") in line
    (tmp_path / ".env").write_text("VTEX_APP_KEY=vtexappkey-mystore-ABCDEF\n")
    line = one_sentence(*await connector("worker", env={}, cwd=tmp_path))
    assert "VTEX_APP_TOKEN is required when the other VTEX credential is set" in line, line


async def test_a_store_that_cannot_be_opened_is_one_sentence_without_its_password(tmp_path: Path) -> None:
    (tmp_path / "not-a-database.db").write_text("these are not the droids\n" * 100)
    cases = {
        "mysql://user:s3cr3t-Pa55word@db.example/orders": "unsupported store URL scheme 'mysql'",
        f"sqlite:///{tmp_path / 'not-a-database.db'}": "not a database",
        "postgresql://user:s3cr3t-Pa55word@127.0.0.1:1/orders": "127.0.0.1",
    }
    for url, expected in cases.items():
        code, out, err = await connector("logs", env={"STORE_URL": url}, cwd=tmp_path)
        line = one_sentence(code, out, err)
        assert expected in line, line
        assert "s3cr3t-Pa55word" not in out + err


async def test_a_port_in_use_names_the_port_and_its_setting(
    temporal_env: WorkflowEnvironment, tmp_path: Path, taken_port: int
) -> None:
    data = {"DATA_DIR": str(tmp_path / "data"), "STORE_URL": f"sqlite:///{tmp_path / 'data' / 'connector.db'}"}
    env = {**data, **NO_METRICS, "TEMPORAL_ADDRESS": UNREACHABLE, "CODEC_PORT": str(taken_port)}
    line = one_sentence(*await connector("run", env=env, cwd=tmp_path))
    assert line == (
        f"connector: the codec server cannot listen on 127.0.0.1:{taken_port}: the port is in use "
        "(stop what holds it, or set CODEC_PORT to a free port)"
    )

    address = temporal_env.client.service_client.config.target_host
    env = {**data, **NO_METRICS, "TEMPORAL_ADDRESS": address, "INTAKE_PORT": str(taken_port)}
    line = one_sentence(*await connector("intake", env=env, cwd=tmp_path))
    assert line == (
        f"connector: the intake cannot listen on 127.0.0.1:{taken_port}: the port is in use "
        "(stop what holds it, or set INTAKE_PORT to a free port)"
    )

    env = {**data, **NO_METRICS, "TEMPORAL_ADDRESS": address, "METRICS_PORT": str(taken_port)}
    line = one_sentence(*await connector("worker", env=env, cwd=tmp_path))
    assert line.startswith(f"connector: the metrics endpoint cannot listen on 127.0.0.1:{taken_port}: "), line
    assert "set METRICS_PORT to a free port" in line

    env = {**data, **NO_METRICS, "TEMPORAL_ADDRESS": address, "TEMPORAL_METRICS_PORT": str(taken_port)}
    line = one_sentence(*await connector("worker", env=env, cwd=tmp_path))
    assert line.startswith(f"connector: the SDK metrics endpoint cannot listen on 127.0.0.1:{taken_port}: "), line
    assert "set TEMPORAL_METRICS_PORT to a free port" in line


async def test_create_order_without_a_sandbox_or_with_a_bad_item_is_one_sentence(tmp_path: Path) -> None:
    url = "http://127.0.0.1:1"
    line = one_sentence(*await connector("create-order", "--marketplace-url", url, env={}, cwd=tmp_path))
    assert line.startswith(f"connector: the marketplace sandbox does not answer at {url} (ConnectError): start")
    line = one_sentence(*await connector("create-order", "--item", "1:two", env={}, cwd=tmp_path))
    assert line == "connector: --item '1:two': write SKU or SKU:QUANTITY, e.g. --item 1:2"


async def test_a_mistyped_command_or_option_is_one_sentence_pointing_to_help(tmp_path: Path) -> None:
    cases = {
        ("stats", "1001"): "connector: no such command 'stats': did you mean 'status'? (see `connector --help`)",
        ("status", "1001", "--conection", "x"): "connector: no such option: --conection",
        ("status",): "connector: missing argument 'MARKETPLACE_ORDER_ID' (see `connector status --help`)",
        ("reprocess", "--status", "lost"): "connector: invalid value for '--status': 'lost' is not one of",
        ("logs", "--date", "01/12/2026"): "connector: invalid value for '--date': '01/12/2026' is not a date",
        ("import", "--page-size", "many"): "connector: invalid value for '--page-size': ",
        (): "connector: missing command (see `connector --help`)",
    }
    for words, start in cases.items():
        code, out, err = await connector(*words, env={}, cwd=tmp_path)
        line = one_sentence(code, out, err)
        assert code == 2 and line.startswith(start), line
        assert line.endswith("--help`)"), line
