"""Temporal clients built one way everywhere: the pydantic data converter plus the encryption codec."""

from __future__ import annotations

from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client
from temporalio.converter import DataConverter
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.service import RPCError, RPCStatusCode

from connector.codec import EncryptionCodec, MissingLocalKey, SecretSealer, generated_local_key, parse_keys
from connector.http_server import PortUnavailable
from connector.refused_payloads import ConnectorPayloadConverter
from connector.settings import Settings, SettingsError


def payload_keys(settings: Settings, *, create_key: bool = True) -> tuple[dict[str, bytes], str]:
    """The payload keys and the current key's id: PAYLOAD_ENCRYPTION_KEYS (and _KEY_ID), or embedded mode's
    generated key. `create_key=False` (commands that read or signal orders): embedded mode's key must exist
    already, SettingsError naming the file and what to do otherwise."""
    if settings.payload_encryption_keys is None:
        if not settings.embedded:
            raise SettingsError("PAYLOAD_ENCRYPTION_KEYS is required when VTEX credentials are set")
        try:
            return generated_local_key(settings.data_dir, create=create_key)
        except MissingLocalKey as exc:
            raise SettingsError(str(exc)) from None
    try:
        keys = parse_keys(settings.payload_encryption_keys.get_secret_value())
    except ValueError as exc:
        raise SettingsError(f"PAYLOAD_ENCRYPTION_KEYS / PAYLOAD_ENCRYPTION_KEY_ID: {exc}") from None
    current = settings.payload_encryption_key_id or next(iter(keys))
    if current not in keys:
        raise SettingsError(
            f"PAYLOAD_ENCRYPTION_KEYS / PAYLOAD_ENCRYPTION_KEY_ID: the current key id {current!r} is not among the "
            "configured keys"
        )
    return keys, current


def payload_codec(settings: Settings, *, refuse_plaintext: bool = True, create_key: bool = True) -> EncryptionCodec:
    """The workers' and clients' codec refuses unencrypted payloads (embedded mode's generated key too:
    nothing the connector writes is plain); the codec server's (`refuse_plaintext=False`) shows them."""
    keys, current = payload_keys(settings, create_key=create_key)
    return EncryptionCodec(keys, current, refuse_plaintext=refuse_plaintext)


def secret_sealer(settings: Settings, *, create_key: bool = True) -> SecretSealer:
    """Secrets kept at rest (a marketplace's OAuth tokens in the store) under the same keys as the payloads."""
    keys, current = payload_keys(settings, create_key=create_key)
    return SecretSealer(keys, current)


def data_converter(settings: Settings, *, create_key: bool = True) -> DataConverter:
    return DataConverter(
        payload_converter_class=ConnectorPayloadConverter, payload_codec=payload_codec(settings, create_key=create_key)
    )


_runtime: Runtime | None = None


def runtime(settings: Settings) -> Runtime | None:
    """One SDK runtime per process, exporting the Temporal SDK's metrics (worker slots, task latencies,
    activity failures...) for Prometheus on TEMPORAL_METRICS_PORT."""
    global _runtime
    if _runtime is None and settings.temporal_metrics_port:
        address = f"{settings.metrics_host}:{settings.temporal_metrics_port}"
        try:
            _runtime = Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=address)))
        except ValueError as exc:  # the SDK's "Failed starting Prometheus exporter: Address already in use"
            reason = str(exc).rpartition(": ")[2] or str(exc)
            raise PortUnavailable(
                f"the SDK metrics endpoint cannot listen on {address}: {reason} (stop what holds it, or set "
                "TEMPORAL_METRICS_PORT to a free port, 0 turns it off)"
            ) from None
    return _runtime


class TemporalUnreachable(RuntimeError):
    """No Temporal server answers at TEMPORAL_ADDRESS; the message is one sentence for the operator."""


class NamespaceNotFound(SettingsError):
    """The Temporal server answers but has no TEMPORAL_NAMESPACE; one sentence for the operator."""


async def connect(settings: Settings, *, with_metrics: bool = False, create_key: bool = True) -> Client:
    """A client of TEMPORAL_ADDRESS; `create_key=False` for commands that must find embedded mode's
    payload key rather than make one (see payload_codec)."""
    converter = data_converter(settings, create_key=create_key)
    sdk_runtime = runtime(settings) if with_metrics else None
    try:
        client = await Client.connect(
            settings.temporal_address,
            namespace=settings.temporal_namespace,
            data_converter=converter,
            runtime=sdk_runtime,
        )
    except RuntimeError as exc:
        raise TemporalUnreachable(
            f"cannot reach Temporal at {settings.temporal_address}: start the connector (`make run`) or "
            "point TEMPORAL_ADDRESS at your Temporal server"
        ) from exc
    await _require_namespace(client, settings)
    return client


async def _require_namespace(client: Client, settings: Settings) -> None:
    """Without this, a mistyped namespace answers every order look-up with "not found"."""
    try:
        await client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace=settings.temporal_namespace)
        )
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            return  # e.g. a key allowed to run workflows but not to describe the namespace: let the work say
        raise NamespaceNotFound(
            f"Temporal at {settings.temporal_address} has no namespace {settings.temporal_namespace!r}: check "
            "TEMPORAL_NAMESPACE, or create it (temporal operator namespace create)"
        ) from None
