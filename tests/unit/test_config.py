"""Configuration: every PBX_* variable is validated at start, and an error names the variable
(and, for structured values, the exact key) so it can be fixed without reading code."""

from __future__ import annotations

import pytest

from pbx_core.config import (
    VARIABLES,
    ConfigError,
    Settings,
    effective_values,
    markdown_table,
    unknown_variables,
)


def test_defaults_load_and_every_variable_is_documented() -> None:
    settings = Settings.from_env({})
    assert settings.ami_url is None and settings.http_port == 8000 and settings.wallboard_thresholds == {}
    table = markdown_table()
    for var in VARIABLES:
        assert f"`{var.name}`" in table and var.help


def test_ami_url_is_parsed() -> None:
    url = Settings.from_env({"PBX_AMI_URL": "ami://pbx:s3cr%3Bet@10.0.0.5:5038"}).ami_url
    assert (url.username, url.secret, url.host, url.port) == ("pbx", "s3cr;et", "10.0.0.5", 5038)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PBX_AMI_URL": "http://x"}, "PBX_AMI_URL"),
        ({"PBX_HTTP_PORT": "80000"}, "PBX_HTTP_PORT must be between 1 and 65535"),
        ({"PBX_TIMEZONE": "Mars/Olympus"}, "PBX_TIMEZONE is not a known IANA timezone"),
        ({"PBX_WALLBOARD_THRESHOLDS": "{"}, "PBX_WALLBOARD_THRESHOLDS is not valid JSON"),
        ({"PBX_WALLBOARD_THRESHOLDS": '{"acme-support": {"sla": {}}}'}, "acme-support.sla is not one of"),
        (
            {"PBX_WALLBOARD_THRESHOLDS": '{"acme-support": {"waiting": {"amber": "3"}}}'},
            "acme-support.waiting must be",
        ),
    ],
)
def test_bad_values_are_refused_naming_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        Settings.from_env(env)


def test_all_errors_are_reported_at_once() -> None:
    with pytest.raises(ConfigError) as exc:
        Settings.from_env({"PBX_HTTP_PORT": "x", "PBX_SHORT_ABANDON_S": "soon"})
    assert "PBX_HTTP_PORT" in str(exc.value) and "PBX_SHORT_ABANDON_S" in str(exc.value)


def test_static_wallboard_tokens_are_checked_with_the_settings() -> None:
    """`pbx-core config` said OK for PBX_WALLBOARD_TOKENS=garbage, which `web` then refused."""
    with pytest.raises(ConfigError, match="PBX_WALLBOARD_TOKENS: expected token=tenant"):
        Settings.from_env({"PBX_WALLBOARD_TOKENS": "garbage"})
    with pytest.raises(ConfigError, match="PBX_WALLBOARD_TOKENS: 'Acme' is not a tenant slug"):
        Settings.from_env({"PBX_WALLBOARD_TOKENS": "tok=Acme"})
    ok = Settings.from_env({"PBX_WALLBOARD_TOKENS": "tok=acme:support"})
    assert ok.wallboard_tokens == "tok=acme:support"


def test_effective_values_mask_secrets_and_mark_defaults() -> None:
    env = {
        "PBX_AMI_URL": "ami://pbx:hunter2@10.0.0.5:5038",
        "PBX_DATABASE_URL": "postgresql://pbx:dbpass@db/pbx",
        "PBX_SECRET_KEY": "0123456789abcdef",
        "PBX_WALLBOARD_TOKENS": "tv1=acme:support;tv2=acme",
        "PBX_HTTP_PORT": "8080",
    }
    rows = {name: (shown, from_env) for name, shown, from_env in effective_values(env)}
    assert set(rows) == {var.name for var in VARIABLES}
    shown = " ".join(value for value, _ in rows.values())
    for secret in ("hunter2", "dbpass", "0123456789abcdef", "tv1", "tv2"):
        assert secret not in shown
    assert rows["PBX_AMI_URL"] == ("ami://pbx:***@10.0.0.5:5038", True)
    assert rows["PBX_DATABASE_URL"] == ("postgresql://pbx:***@db/pbx", True)
    assert rows["PBX_WALLBOARD_TOKENS"][0] == "2 token(s), for acme:support, acme"
    assert rows["PBX_HTTP_PORT"] == ("8080", True)
    assert rows["PBX_TIMEZONE"] == ("Europe/Amsterdam", False)
    assert rows["PBX_REDIS_URL"] == ("(unset)", False)


def test_unknown_pbx_variables_are_named_with_the_nearest_setting() -> None:
    env = {"PBX_HTTP_PROT": "8080", "PBX_TEST_AMI_URL": "x", "PBX_FIXTURES_DIR": "x", "PBX_FROBNICATE": "1",
           "PBX_HTTP_PORT": "8080", "HOME": "/root"}
    assert unknown_variables(env) == ["PBX_FROBNICATE", "PBX_HTTP_PROT (did you mean PBX_HTTP_PORT?)"]


def test_the_readme_configuration_table_is_the_generated_one() -> None:
    """Every PBX_* variable, as `pbx-core config --markdown` prints it: the README cannot drift."""
    from tests.conftest import ROOT

    readme = (ROOT / "README.md").read_text()
    assert markdown_table() in readme, "regenerate the README table with `pbx-core config --markdown`"
