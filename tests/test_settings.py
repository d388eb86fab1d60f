"""Settings fail fast with a message naming the variable, and never show the app token."""

from __future__ import annotations

import pytest

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
