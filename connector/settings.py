"""Settings from environment variables (and an optional `.env`), validated once at start-up.

A missing or malformed value stops start-up with a message that names the variable. With no VTEX
credentials the connector runs in *embedded* mode: local Temporal dev server and the built-in sandboxes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AnyHttpUrl, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from connector.models import ReprocessPolicy, VtexFlow
from connector.secret_strength import require_strong

VTEX_TOKEN_REMEDY = "use the app token VTEX generated with the app key (Account settings > Application keys)"


class SettingsError(Exception):
    """Raised with a message meant for the person starting the connector."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    vtex_account: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9-]*$")
    vtex_environment: str = Field(default="vtexcommercestable", pattern=r"^[a-z0-9-]+$")
    vtex_base_url: AnyHttpUrl | None = None
    vtex_app_key: str | None = None
    vtex_app_token: SecretStr | None = None
    vtex_sales_channel: str = Field(default="1", pattern=r"^\d+$")
    # VTEX rejects an affiliate id that is not three letters (FMT0031).
    vtex_affiliate_id: str = Field(default="MKP", pattern=r"^[A-Za-z]{3}$")
    vtex_seller_id: str = Field(default="1", min_length=1)
    vtex_timeout_seconds: float = Field(default=20.0, gt=0)

    temporal_address: str = Field(default="127.0.0.1:7233", pattern=r"^[^:\s]+:\d+$")
    temporal_namespace: str = "default"
    temporal_task_queue: str = "vtex-orders"
    # VTEX calls stay under this many activities per second across every worker (enforced by the Temporal
    # server on the VTEX task queue). Validation makes 1 + (distinct SKUs) calls, the other steps one.
    vtex_activities_per_second: float | None = Field(default=None, gt=0)

    connection_name: str = Field(default="reference", pattern=r"^[a-z0-9][a-z0-9-]{0,40}$")
    marketplace_base_url: AnyHttpUrl | None = None
    # The public base URL VTEX calls back (marketplaceServicesEndpoint is built from it).
    connector_public_url: AnyHttpUrl = AnyHttpUrl("http://127.0.0.1:8000")

    # Scenario 1: None refuses price divergence; a rate (0.05 = 5%) places such orders for manual approval.
    price_divergence_allowance_rate: float | None = Field(default=None, ge=0, le=1)
    reprocess_first_delay_seconds: float = Field(default=60.0, gt=0)
    reprocess_max_delay_seconds: float = Field(default=3600.0, gt=0)
    reprocess_max_attempts: int = Field(default=10, ge=10, description="VTEX asks for at least 10.")
    dead_letter_retry_seconds: float = Field(default=6 * 3600.0, gt=0)
    price_approval_poll_seconds: float = Field(default=300.0, gt=0)
    # How orders are placed in VTEX (README, "Two ways into VTEX"); CONNECTIONS_FILE may set it per connection.
    vtex_flow: VtexFlow = VtexFlow.FULFILLMENT
    # Channel Order API: the first look at VTEX after a request, doubling (the notification usually comes first).
    channel_order_check_seconds: float = Field(default=15.0, gt=0)
    # How often an order the marketplace fulfills asks it for the invoice it issues (Mercado Libre Full).
    marketplace_invoice_poll_seconds: float = Field(default=900.0, gt=0)
    activity_attempts: int = Field(default=5, ge=1)
    activity_initial_interval_seconds: float = Field(default=1.0, gt=0)

    # Orders to be paid: place them at once (stock reserved) and authorize dispatch once paid; without
    # it, unpaid orders wait in the connector until the marketplace says they are paid.
    accept_unpaid_orders: bool = False
    payment_window_seconds: float = Field(default=86400.0, gt=0)
    # How long a completed or canceled order's workflow stays open for returns, chargebacks, late payments
    # and late VTEX callbacks (README, "After-sale window"): 120 days covers card chargeback windows.
    after_sale_window_days: float = Field(default=120.0, gt=0)
    # How long a cancel looks for an order whose placement answer was lost before concluding VTEX never
    # had it (OMS lists new orders with a lag of minutes).
    unknown_placement_window_seconds: float = Field(default=600.0, gt=0)
    # An order's workflow continues as new past this many history events (the server suggests it too).
    continue_as_new_after_events: int = Field(default=2000, ge=50)
    # Secret part of marketplaceServicesEndpoint: VTEX does not sign its callbacks, so the URL is the key.
    # Comma-separated to rotate: the first is given to new orders, every one is accepted (placed orders
    # keep the URL they were given).
    callback_token: SecretStr | None = None
    # HMAC-SHA256 key the marketplace signs its webhooks with.
    webhook_secret: SecretStr | None = None
    # A signed webhook is accepted this long around its timestamp; a replay after it gets 401.
    webhook_replay_window_seconds: float = Field(default=300.0, gt=0)
    # Several connections: a JSON file (README, "Connections"); otherwise one, from the variables above.
    connections_file: Path | None = None
    polling_enabled: bool = True
    poll_interval_seconds: float = Field(default=60.0, gt=0)
    poll_overlap_seconds: float = Field(default=120.0, ge=0)
    # Entries per listing request (the reference marketplace allows 1 to 100).
    poll_page_size: int = Field(default=100, ge=1, le=100)
    # A poll heartbeats after every page: a worker that dies mid-poll is noticed this soon, and the poll
    # goes on from its last page on another worker.
    poll_heartbeat_timeout_seconds: float = Field(default=30.0, gt=0)
    # A change the poller lists before its webhook arrived waits this long for it (0: hand off at once,
    # for a marketplace that sends no webhooks).
    poll_webhook_grace_seconds: float = Field(default=30.0, ge=0)

    # sqlite:///path or postgresql://user:password@host:port/database
    store_url: str = "sqlite:///data/connector.db"
    # Order-log retention (connector/retention.py): Success messages are purged after this many days, every
    # other status after the second; 0 keeps them forever.
    log_retention_days: float = Field(default=30.0, ge=0)
    log_error_retention_days: float = Field(default=180.0, ge=0)

    # Workflow payloads are encrypted (AES-GCM): `id1:base64key,id2:base64key`; the current key encrypts,
    # all of them decrypt. Embedded mode generates one into the data folder.
    payload_encryption_keys: SecretStr | None = None
    payload_encryption_key_id: str | None = None
    codec_port: int = Field(default=8089, ge=0, le=65535)
    # Origins allowed to call the codec server (the Temporal Web UI).
    codec_cors_origins: str = "http://127.0.0.1:8233,http://localhost:8233"
    # When set, the codec server wants `Authorization: Bearer <token>`.
    codec_auth_token: SecretStr | None = None

    # The seller's console (connector/console/): its port on INTAKE_HOST (0 leaves it out of `connector run`),
    # its one login, and the Temporal Web UI its order pages link to. Embedded mode generates the password
    # into the data folder when none is set.
    console_port: int = Field(default=8088, ge=0, le=65535)
    console_user: str = Field(default="seller", min_length=1, max_length=100)
    console_password: SecretStr | None = None
    temporal_ui_url: AnyHttpUrl = AnyHttpUrl("http://127.0.0.1:8233")

    # Prometheus: the connector's own metrics, and the Temporal SDK's (0 turns either off).
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(default=9464, ge=0, le=65535)
    temporal_metrics_port: int = Field(default=9465, ge=0, le=65535)
    # `connector intake` beside `connector worker` on one host must not take the worker's port.
    intake_metrics_port: int = Field(default=9466, ge=0, le=65535)

    worker_graceful_shutdown_seconds: float = Field(default=30.0, ge=0)
    # Workflows the worker keeps in memory between their tasks (Temporal's sticky cache). Each costs about
    # 0.25 MiB (the sandbox re-imports the workflow module per run); one that is evicted replays its
    # history on its next task, a few milliseconds for an order.
    worker_max_cached_workflows: int = Field(default=500, ge=0)

    intake_host: str = "127.0.0.1"
    intake_port: int = Field(default=8000, ge=0, le=65535, description="0 picks a free port.")
    data_dir: Path = Path("data")
    demo_order_interval_seconds: float = Field(default=5.0, ge=0)
    # `text`: one readable line per message; `json`: one JSON object per line (connector/logging_setup.py).
    log_format: Literal["text", "json"] = "text"

    @model_validator(mode="after")
    def _secrets_are_strong(self) -> Settings:
        for variable, secret in (
            ("WEBHOOK_SECRET", self.webhook_secret),
            ("CODEC_AUTH_TOKEN", self.codec_auth_token),
            ("CONSOLE_PASSWORD", self.console_password),
        ):
            if secret is not None:
                require_strong(variable, secret.get_secret_value())
        if self.vtex_app_token is not None:
            require_strong("VTEX_APP_TOKEN", self.vtex_app_token.get_secret_value(), remedy=VTEX_TOKEN_REMEDY)
        if self.callback_token is not None:
            callback_tokens(self.callback_token.get_secret_value(), variable="CALLBACK_TOKEN")
        return self

    @model_validator(mode="after")
    def _credentials_are_complete(self) -> Settings:
        if (self.vtex_app_key is None) != (self.vtex_app_token is None):
            missing = "VTEX_APP_TOKEN" if self.vtex_app_token is None else "VTEX_APP_KEY"
            raise ValueError(f"{missing} is required when the other VTEX credential is set")
        if self.has_vtex_credentials and self.vtex_account is None and self.vtex_base_url is None:
            raise ValueError("VTEX_ACCOUNT is required when VTEX credentials are set")
        if self.has_vtex_credentials and self.marketplace_base_url is None and self.connections_file is None:
            raise ValueError("MARKETPLACE_BASE_URL is required when VTEX credentials are set")
        if self.has_vtex_credentials and self.connections_file is None:
            for variable, value in (("CALLBACK_TOKEN", self.callback_token), ("WEBHOOK_SECRET", self.webhook_secret)):
                if value is None:
                    raise ValueError(f"{variable} is required when VTEX credentials are set (16+ random characters)")
        return self

    @property
    def has_vtex_credentials(self) -> bool:
        return self.vtex_app_key is not None and self.vtex_app_token is not None

    @property
    def embedded(self) -> bool:
        """No real VTEX account configured: run against the built-in sandboxes."""
        return not self.has_vtex_credentials

    def vtex_url(self) -> str:
        if self.vtex_base_url is not None:
            return str(self.vtex_base_url).rstrip("/")
        if self.vtex_account is None:
            raise SettingsError("VTEX_ACCOUNT or VTEX_BASE_URL must be set to reach VTEX")
        return f"https://{self.vtex_account}.{self.vtex_environment}.com.br"

    @property
    def vtex_task_queue(self) -> str:
        return f"{self.temporal_task_queue}-vtex"

    @property
    def account_name(self) -> str:
        """The VTEX account the order log is filed under (`/{account}/logs`)."""
        return self.vtex_account or "sandbox"

    def reprocess_policy(self) -> ReprocessPolicy:
        return ReprocessPolicy(
            activity_attempts=self.activity_attempts,
            activity_initial_interval_seconds=self.activity_initial_interval_seconds,
            first_delay_seconds=self.reprocess_first_delay_seconds,
            max_delay_seconds=self.reprocess_max_delay_seconds,
            max_attempts=self.reprocess_max_attempts,
            dead_letter_retry_seconds=self.dead_letter_retry_seconds,
            approval_poll_seconds=self.price_approval_poll_seconds,
            channel_order_check_seconds=self.channel_order_check_seconds,
            marketplace_invoice_poll_seconds=self.marketplace_invoice_poll_seconds,
            # A placement makes up to three sequential VTEX calls (look-up, place, place async).
            activity_timeout_seconds=3 * self.vtex_timeout_seconds + 5,
        )

    def marketplace_services_endpoint(self, connection: str, callback_token: str) -> str:
        """The URL VTEX will call for invoices, tracking and cancellations of a connection's orders."""
        return f"{str(self.connector_public_url).rstrip('/')}/vtex/{connection}/{callback_token}"


def callback_tokens(text: str, *, variable: str) -> tuple[str, ...]:
    """`new,old,...`: each a strong secret; ValueError naming the variable otherwise."""
    tokens = tuple(token.strip() for token in text.split(",") if token.strip())
    if not tokens:
        raise ValueError(f"{variable} is empty")
    for token in tokens:
        require_strong(variable, token)
    return tokens


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment, turning validation errors into one readable message."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            variable = "_".join(str(part) for part in error["loc"]).upper()
            message = error["msg"].removeprefix("Value error, ")
            problems.append(f"{variable}: {message}" if variable else message)
        # One line: what is wrong (never the value: it may be a secret) and where to fix it.
        raise SettingsError(
            f"invalid configuration: {'; '.join(problems)} (fix it in the environment or in {Path('.env').absolute()})"
        ) from None
