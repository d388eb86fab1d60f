"""Settings fail fast with a message naming the variable, and never show the app token."""

from __future__ import annotations

from pathlib import Path

import pytest

from connector.connections import build_connections
from connector.settings import Settings, SettingsError, load_settings

SECRET = "super-secret-app-token-value"


def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "VTEX_APP_KEY",
        "VTEX_APP_TOKEN",
        "VTEX_ACCOUNT",
        "VTEX_BASE_URL",
        "MARKETPLACE_BASE_URL",
        "CALLBACK_TOKEN",
        "WEBHOOK_SECRET",
        "CONNECTIONS_FILE",
        "VTEX_AFFILIATE_ID",
        "TEMPORAL_ADDRESS",
        "INTAKE_PORT",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(Settings, "model_config", {**Settings.model_config, "env_file": None})


def test_defaults_are_embedded_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    clean_env(monkeypatch)
    settings = load_settings()
    assert settings.embedded
    assert settings.vtex_environment == "vtexcommercestable"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("VTEX_AFFILIATE_ID", "MARKETPLACE"),
        ("TEMPORAL_ADDRESS", "no-port"),
        ("INTAKE_PORT", "http"),
        ("VTEX_BASE_URL", "not a url"),
    ],
)
def test_malformed_value_names_the_variable(monkeypatch: pytest.MonkeyPatch, variable: str, value: str) -> None:
    clean_env(monkeypatch)
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as error:
        load_settings()
    assert variable in str(error.value)


def test_half_configured_credentials_name_the_missing_one(monkeypatch: pytest.MonkeyPatch) -> None:
    clean_env(monkeypatch)
    monkeypatch.setenv("VTEX_APP_KEY", "vtexappkey-x")
    with pytest.raises(SettingsError, match="VTEX_APP_TOKEN"):
        load_settings()


def test_app_token_is_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    clean_env(monkeypatch)
    monkeypatch.setenv("VTEX_APP_KEY", "vtexappkey-x")
    monkeypatch.setenv("VTEX_APP_TOKEN", SECRET)
    monkeypatch.setenv("VTEX_ACCOUNT", "mystore")
    monkeypatch.setenv("MARKETPLACE_BASE_URL", "https://marketplace.example")
    with pytest.raises(SettingsError, match="CALLBACK_TOKEN"):
        load_settings()
    monkeypatch.setenv("CALLBACK_TOKEN", "callback-" + SECRET)
    with pytest.raises(SettingsError, match="WEBHOOK_SECRET"):
        load_settings()
    monkeypatch.setenv("WEBHOOK_SECRET", "webhook-" + SECRET)
    settings = load_settings()
    assert not settings.embedded
    assert settings.vtex_url() == "https://mystore.vtexcommercestable.com.br"
    assert SECRET not in repr(settings) and SECRET not in str(settings.model_dump())
    monkeypatch.setenv("VTEX_AFFILIATE_ID", "TOO-LONG")
    with pytest.raises(SettingsError) as error:
        load_settings()
    assert SECRET not in str(error.value)


def test_base_url_override_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    clean_env(monkeypatch)
    monkeypatch.setenv("VTEX_BASE_URL", "http://127.0.0.1:9999/")
    assert load_settings().vtex_url() == "http://127.0.0.1:9999"


def real_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    clean_env(monkeypatch)
    monkeypatch.setenv("VTEX_APP_KEY", "vtexappkey-x")
    monkeypatch.setenv("VTEX_APP_TOKEN", SECRET)
    monkeypatch.setenv("VTEX_ACCOUNT", "mystore")
    monkeypatch.setenv("MARKETPLACE_BASE_URL", "https://marketplace.example")
    monkeypatch.setenv("CALLBACK_TOKEN", "kTq3-vY8pW2zLx9sRb4nDf7h")
    monkeypatch.setenv("WEBHOOK_SECRET", "Zp6Qm-2rTx8vKc4wNs9jHb3y")


def example_value(variable: str) -> str:
    for line in (Path(__file__).resolve().parents[1] / ".env.example").read_text().splitlines():
        if line.startswith(f"{variable}="):
            return line.split("=", 1)[1]
    raise AssertionError(f"{variable} is not in .env.example")


@pytest.mark.parametrize("variable", ["WEBHOOK_SECRET", "CALLBACK_TOKEN", "VTEX_APP_TOKEN"])
@pytest.mark.parametrize(
    "weak",
    [
        "example",
        "aaaaaaaaaaaaaaaaaaaa",
        "abcdefghijklmnopqrst",
        "12345678901234567890",
        "short",
        "changeme-0Xk9Tq2vLw7z",
    ],
)
def test_placeholder_and_weak_secrets_are_refused_without_showing_them(
    monkeypatch: pytest.MonkeyPatch, variable: str, weak: str
) -> None:
    real_mode(monkeypatch)
    value = example_value(variable) if weak == "example" else weak
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as error:
        load_settings()
    message = str(error.value)
    assert variable in message and ("Application keys" if variable == "VTEX_APP_TOKEN" else "token_urlsafe") in message
    assert value not in message


def test_several_callback_tokens_rotate(monkeypatch: pytest.MonkeyPatch) -> None:
    real_mode(monkeypatch)
    monkeypatch.setenv("CALLBACK_TOKEN", "kTq3-vY8pW2zLx9sRb4nDf7h, Old-Wm5cX1qZr8tBv6yP2kEj")
    settings = load_settings()
    connection = build_connections(settings)["reference"]
    assert connection.callback_tokens == ("kTq3-vY8pW2zLx9sRb4nDf7h", "Old-Wm5cX1qZr8tBv6yP2kEj")
    assert connection.services_endpoint.endswith("/vtex/reference/kTq3-vY8pW2zLx9sRb4nDf7h")
    monkeypatch.setenv("CALLBACK_TOKEN", "kTq3-vY8pW2zLx9sRb4nDf7h,change-me-to-another-long-random-string")
    with pytest.raises(SettingsError, match="CALLBACK_TOKEN is a placeholder"):
        load_settings()
