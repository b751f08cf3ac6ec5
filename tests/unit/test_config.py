"""Configuration: every PBX_* variable is validated at start, and an error names the variable
(and, for structured values, the exact key) so it can be fixed without reading code."""

from __future__ import annotations

import pytest

from pbx_core.config import VARIABLES, ConfigError, Settings, markdown_table


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
