"""Start-up checks of the SMTP settings that keep the relay password off the wire in clear."""

from __future__ import annotations

import pytest

from fit_service.adapters.email import SmtpSettings
from fit_service.config import ConfigError, Settings

LOGIN = {"FIT_SMTP_HOST": "mail.clinic.example", "FIT_SMTP_USERNAME": "fit"} | {
    "FIT_SMTP_PASSWORD": "hunter2"
}


def test_credentials_without_tls_are_refused_at_start() -> None:
    """A username and password with neither STARTTLS nor implicit TLS would be sent in clear:
    start-up stops with one line naming the settings, and not the password."""
    with pytest.raises(ConfigError) as info:
        Settings.from_env(LOGIN)
    message = str(info.value)
    assert "FIT_SMTP_USERNAME" in message
    assert "FIT_SMTP_STARTTLS" in message
    assert "FIT_SMTP_TLS" in message
    assert "\n" not in message
    assert "hunter2" not in message


@pytest.mark.parametrize("tls", ["FIT_SMTP_STARTTLS", "FIT_SMTP_TLS"])
def test_credentials_with_either_kind_of_tls_are_accepted(tls: str) -> None:
    settings = Settings.from_env(LOGIN | {tls: "true"})
    smtp = SmtpSettings.from_settings(settings)
    assert smtp is not None
    assert (smtp.username, smtp.password) == ("fit", "hunter2")
    assert (smtp.starttls, smtp.tls) == (tls == "FIT_SMTP_STARTTLS", tls == "FIT_SMTP_TLS")


def test_starttls_and_implicit_tls_together_are_refused() -> None:
    with pytest.raises(ConfigError, match="FIT_SMTP_STARTTLS and FIT_SMTP_TLS"):
        Settings.from_env({"FIT_SMTP_STARTTLS": "true", "FIT_SMTP_TLS": "true"})


def test_tls_setting_is_a_boolean() -> None:
    with pytest.raises(ConfigError, match="FIT_SMTP_TLS must be true or false"):
        Settings.from_env({"FIT_SMTP_TLS": "465"})


def test_no_login_needs_no_tls() -> None:
    """A relay that takes mail without a login (an internal one) still works in plaintext."""
    smtp = SmtpSettings.from_settings(Settings.from_env({"FIT_SMTP_HOST": "mail.example"}))
    assert smtp is not None
    assert (smtp.starttls, smtp.tls, smtp.username) == (False, False, None)


def test_smtp_settings_built_directly_refuse_a_login_in_clear() -> None:
    """The adapter's own settings refuse it too (they can be built without ``Settings``)."""
    with pytest.raises(ValueError, match="TLS"):
        SmtpSettings(host="mail.example", username="fit", password="hunter2")
    with pytest.raises(ValueError, match="STARTTLS or implicit TLS"):
        SmtpSettings(host="mail.example", starttls=True, tls=True)
    SmtpSettings(host="mail.example", username="fit", password="hunter2", tls=True)


@pytest.mark.parametrize("field", ["FIT_SMTP_USERNAME", "FIT_SMTP_PASSWORD"])
def test_a_non_ascii_login_is_refused_at_start(field: str) -> None:
    """smtplib sends a login as ASCII only: with "pässword" every e-mail would fail."""
    with pytest.raises(ConfigError, match="must be ASCII") as info:
        Settings.from_env(LOGIN | {"FIT_SMTP_STARTTLS": "true", field: "pässword"})
    assert "pässword" not in str(info.value)
