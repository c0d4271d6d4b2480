"""Settings: defaults, environment, flag-over-env, region resolution and every validation rule."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from pydantic import SecretStr, ValidationError

from genesys_sentiment_exporter.app import make_source
from genesys_sentiment_exporter.cli import ConfigError, _settings_values, build_parser, load_settings
from genesys_sentiment_exporter.config import REGIONS, Settings, parse_listen_address
from genesys_sentiment_exporter.stream_state import StreamState

SECRET = "s3cr3t-Value-42"


def error_text(**values: object) -> str:
    with pytest.raises(ValidationError) as info:
        Settings(**values)
    return str(info.value)


# -- defaults --------------------------------------------------------------------------------------


def test_defaults() -> None:
    s = Settings()
    assert s.client_id == ""
    assert isinstance(s.client_secret, SecretStr)
    assert s.client_secret.get_secret_value() == ""
    assert s.client_secret_file is None
    assert s.region == ""
    assert s.api_base_url == ""
    assert s.login_base_url == ""
    assert s.queue_id == []
    assert s.agent_id == []
    assert s.heartbeat_seconds == 30
    assert s.window_size == 5
    assert s.grace_seconds == 5.0
    assert s.idle_seconds == 900.0
    assert s.max_agents == 20_000
    assert s.token_refresh_margin_seconds == 300.0
    assert s.web_listen_address == ":8729"
    assert s.web_telemetry_path == "/metrics"
    assert s.web_config_file is None
    assert s.log_level == "info"
    assert s.log_format == "logfmt"
    assert s.resolved_api_base_url() == ""
    assert s.resolved_login_base_url() == ""


def test_defaults_are_not_shared_between_instances() -> None:
    first = Settings()
    first.queue_id.append("q-leak")
    assert Settings().queue_id == []


# -- environment -----------------------------------------------------------------------------------


def test_prefixed_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENESYS_EXPORTER_HEARTBEAT_SECONDS", "45")
    monkeypatch.setenv("GENESYS_EXPORTER_WINDOW_SIZE", "7")
    monkeypatch.setenv("GENESYS_EXPORTER_GRACE_SECONDS", "2.5")
    monkeypatch.setenv("GENESYS_EXPORTER_WEB_LISTEN_ADDRESS", "127.0.0.1:9000")
    monkeypatch.setenv("GENESYS_EXPORTER_WEB_TELEMETRY_PATH", "/sentiment")
    monkeypatch.setenv("GENESYS_EXPORTER_LOG_LEVEL", "debug")
    monkeypatch.setenv("GENESYS_EXPORTER_LOG_FORMAT", "json")
    monkeypatch.setenv("GENESYS_EXPORTER_API_BASE_URL", "https://gateway.example.com")
    s = Settings()
    assert s.heartbeat_seconds == 45
    assert s.window_size == 7
    assert s.grace_seconds == 2.5
    assert s.web_listen_address == "127.0.0.1:9000"
    assert s.web_telemetry_path == "/sentiment"
    assert s.log_level == "debug"
    assert s.log_format == "json"
    assert s.resolved_api_base_url() == "https://gateway.example.com"


def test_comma_separated_ids_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENESYS_EXPORTER_QUEUE_ID", "q1, q2,,q3 ")
    monkeypatch.setenv("GENESYS_EXPORTER_AGENT_ID", "a1")
    s = Settings()
    assert s.queue_id == ["q1", "q2", "q3"]
    assert s.agent_id == ["a1"]


def test_credentials_use_the_genesys_ecosystem_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENESYSCLOUD_OAUTHCLIENT_ID", "client-123")
    monkeypatch.setenv("GENESYSCLOUD_OAUTHCLIENT_SECRET", SECRET)
    monkeypatch.setenv("GENESYSCLOUD_REGION", "eu-west-1")
    s = Settings(source="analytics-websocket")
    assert s.client_id == "client-123"
    assert isinstance(s.client_secret, SecretStr)
    assert s.client_secret.get_secret_value() == SECRET
    assert s.region == "mypurecloud.ie"
    assert s.resolved_api_base_url() == "https://api.mypurecloud.ie"
    assert s.resolved_login_base_url() == "https://login.mypurecloud.ie"
    s.require_endpoints_and_credentials()  # complete: does not raise


def test_secret_never_appears_in_repr_or_str(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENESYSCLOUD_OAUTHCLIENT_SECRET", SECRET)
    s = Settings(client_id="someone")
    for text in (repr(s), str(s), f"{s}", repr(s.client_secret), str(s.client_secret), s.model_dump_json()):
        assert SECRET not in text
    assert "someone" in repr(s)  # the check above is meaningful: repr does show the settings


def test_secret_from_init_is_a_secretstr_and_hidden() -> None:
    s = Settings(client_secret=SECRET)
    assert isinstance(s.client_secret, SecretStr)
    assert SECRET not in repr(s)
    assert SECRET not in str(s)


@pytest.mark.parametrize(
    ("name", "value"),
    [("REGION", "us-east-1"), ("region", "eu-west-1"), ("CLIENT_ID", "other-tool"), ("CLIENT_SECRET", "other-tool")],
)
def test_unprefixed_generic_environment_names_are_ignored(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    """Only GENESYSCLOUD_* (and GENESYS_EXPORTER_*) configure the exporter, never a bare REGION/CLIENT_SECRET
    that another tool in the same container happens to use."""
    monkeypatch.setenv(name, value)
    s = Settings()
    assert s.region == ""
    assert s.client_id == ""
    assert s.client_secret.get_secret_value() == ""


# -- flag beats environment ------------------------------------------------------------------------


def test_flag_beats_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENESYS_EXPORTER_HEARTBEAT_SECONDS", "60")
    monkeypatch.setenv("GENESYSCLOUD_REGION", "eu-west-1")
    monkeypatch.setenv("GENESYSCLOUD_OAUTHCLIENT_ID", "from-env")
    monkeypatch.setenv("GENESYS_EXPORTER_QUEUE_ID", "env-q1,env-q2")
    s = load_settings({"heartbeat_seconds": "20", "region": "us-east-1", "client_id": "from-flag", "queue_id": ["q9"]})
    assert s.heartbeat_seconds == 20
    assert s.region == "mypurecloud.com"
    assert s.client_id == "from-flag"
    assert s.queue_id == ["q9"]


def test_valid_flag_overrides_invalid_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENESYS_EXPORTER_HEARTBEAT_SECONDS", "5")
    assert load_settings({"heartbeat_seconds": "15"}).heartbeat_seconds == 15
    with pytest.raises(ConfigError):
        load_settings({})


# -- regions ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "domain"), sorted(REGIONS.items()))
def test_region_name_resolves_to_api_and_login_hosts(name: str, domain: str) -> None:
    s = Settings(region=name)
    assert s.region == domain
    assert s.resolved_api_base_url() == f"https://api.{domain}"
    assert s.resolved_login_base_url() == f"https://login.{domain}"


@pytest.mark.parametrize("domain", sorted(REGIONS.values()))
def test_region_domain_resolves(domain: str) -> None:
    s = Settings(region=domain)
    assert s.resolved_api_base_url() == f"https://api.{domain}"
    assert s.resolved_login_base_url() == f"https://login.{domain}"


@pytest.mark.parametrize(
    ("value", "domain"),
    [
        ("api.mypurecloud.ie", "mypurecloud.ie"),
        ("login.mypurecloud.de", "mypurecloud.de"),
        ("api.usw2.pure.cloud", "usw2.pure.cloud"),
        ("  EU-West-1 ", "mypurecloud.ie"),
        ("Login.MyPureCloud.JP", "mypurecloud.jp"),
    ],
)
def test_prefixed_hosts_and_spelling_variants(value: str, domain: str) -> None:
    s = Settings(region=value)
    assert s.resolved_api_base_url() == f"https://api.{domain}"
    assert s.resolved_login_base_url() == f"https://login.{domain}"


@pytest.mark.parametrize(
    "value", ["mars-1", "eu-west-9", "example.com", "api.example.com", "https://api.mypurecloud.ie"]
)
def test_unknown_region_is_refused(value: str) -> None:
    text = error_text(region=value)
    assert "unknown region" in text
    assert "eu-west-1" in text  # tells the user what is accepted


def test_explicit_base_urls_beat_region() -> None:
    s = Settings(region="eu-west-1", api_base_url="https://gw.example.com/", login_base_url="https://auth.example.com")
    assert s.resolved_api_base_url() == "https://gw.example.com"
    assert s.resolved_login_base_url() == "https://auth.example.com"


# -- heartbeat -------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [0, 1, 9])
def test_heartbeat_below_ten_is_refused_with_rate_limit_reason(value: int) -> None:
    text = error_text(heartbeat_seconds=value)
    assert "at least 10" in text
    assert "rate limit" in text


def test_heartbeat_bounds_accepted() -> None:
    assert Settings(heartbeat_seconds=10).heartbeat_seconds == 10
    assert Settings(heartbeat_seconds=3600).heartbeat_seconds == 3600
    assert "at most 3600" in error_text(heartbeat_seconds=3601)


# -- base URLs -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8730", "http://[::1]:8730", "http://localhost:8730", "http://localhost"]
)
def test_plain_http_allowed_for_loopback(url: str) -> None:
    s = Settings(api_base_url=url, login_base_url=url + "/")
    assert s.resolved_api_base_url() == url
    assert s.resolved_login_base_url() == url  # trailing slash dropped


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com",
        "http://api.mypurecloud.ie",
        "http://10.0.0.1:8080",
        "http://0.0.0.0:8730",
        "http://127.0.0.1.example.com",
        "http://localhost.example.com",
    ],
)
@pytest.mark.parametrize("field", ["api_base_url", "login_base_url"])
def test_plain_http_refused_elsewhere(field: str, url: str) -> None:
    text = error_text(**{field: url})
    assert "use https" in text
    assert "loopback" in text


@pytest.mark.parametrize("url", ["https://api.mypurecloud.ie", "https://gw.example.com:8443", "https://[2001:db8::1]"])
def test_https_accepted_anywhere(url: str) -> None:
    assert Settings(api_base_url=url).resolved_api_base_url() == url


@pytest.mark.parametrize("url", ["ftp://example.com", "wss://api.mypurecloud.ie", "api.mypurecloud.ie", "https://"])
def test_non_http_urls_refused(url: str) -> None:
    assert "not an http(s) URL" in error_text(api_base_url=url)


@pytest.mark.parametrize(
    "url",
    [
        "https://api.mypurecloud.ie/api/v2",
        "https://gw.example.com/prefix/",
        "http://127.0.0.1:8730/oauth/token",
        "https://gw.example.com?x=1",
        "https://gw.example.com/#frag",
    ],
)
def test_base_url_with_path_query_or_fragment_refused(url: str) -> None:
    assert "base URL only" in error_text(login_base_url=url)


# -- listen address --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "parsed"),
    [
        (":8729", ("", 8729)),
        ("127.0.0.1:0", ("127.0.0.1", 0)),
        ("0.0.0.0:65535", ("0.0.0.0", 65535)),
        ("[::1]:9000", ("::1", 9000)),
        ("[::]:8729", ("::", 8729)),
        ("localhost:8729", ("localhost", 8729)),
    ],
)
def test_listen_address_parsing(address: str, parsed: tuple[str, int]) -> None:
    assert parse_listen_address(address) == parsed
    assert Settings(web_listen_address=address).web_listen_address == address


@pytest.mark.parametrize("address", ["8729", "", "localhost", "host:", "host:http", ":65536", ":-1", "[::1]"])
def test_bad_listen_address_refused(address: str) -> None:
    with pytest.raises(ValueError, match="is not host:port"):
        parse_listen_address(address)
    assert "is not host:port" in error_text(web_listen_address=address)


# -- telemetry path --------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/metrics", "/sentiment/metrics", "/-/metrics"])
def test_telemetry_path_accepted(path: str) -> None:
    assert Settings(web_telemetry_path=path).web_telemetry_path == path


@pytest.mark.parametrize("path", ["/", "/-/healthy", "/-/ready", "metrics", ""])
def test_telemetry_path_refused(path: str) -> None:
    assert "distinct from /, /-/healthy and /-/ready" in error_text(web_telemetry_path=path)


# -- other field rules -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "values",
    [
        {"window_size": 0},
        {"window_size": 101},
        {"grace_seconds": -1},
        {"idle_seconds": 0},
        {"max_agents": 0},
        {"token_refresh_margin_seconds": -1},
        {"log_level": "loud"},
        {"log_format": "xml"},
        {"source": "carrier-pigeon"},
        {"no_such_setting": 1},
    ],
)
def test_out_of_range_values_refused(values: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Settings(**values)


# -- client secret file ----------------------------------------------------------------------------


def test_client_secret_file_is_read_and_stripped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENESYSCLOUD_OAUTHCLIENT_SECRET", "from-env")
    secret_file = tmp_path / "secret"
    secret_file.write_text(f"  {SECRET}\n", encoding="utf-8")
    s = Settings(client_secret_file=secret_file)
    assert isinstance(s.client_secret, SecretStr)
    assert s.client_secret.get_secret_value() == SECRET
    assert SECRET not in repr(s)


def test_client_secret_file_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET, encoding="utf-8")
    monkeypatch.setenv("GENESYS_EXPORTER_CLIENT_SECRET_FILE", str(secret_file))
    assert Settings().client_secret.get_secret_value() == SECRET


def test_missing_client_secret_file_is_refused(tmp_path: Path) -> None:
    text = error_text(client_secret_file=tmp_path / "absent")
    assert "client_secret_file" in text
    assert "cannot read it" in text


def test_unreadable_secret_file_error_names_the_flag(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({"client_secret_file": str(tmp_path / "absent")})
    assert "--client-secret-file" in str(info.value)
    assert "GENESYS_EXPORTER_CLIENT_SECRET_FILE" in str(info.value)


# -- endpoints and credentials for run/check -------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({}, "region"),
        ({"api_base_url": "https://gw.example.com"}, "region"),  # login host still unknown
        ({"region": "eu-west-1"}, "client_id"),
        ({"region": "eu-west-1", "client_id": "c"}, "client_secret"),
    ],
)
def test_require_endpoints_and_credentials(values: dict[str, str], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings(**values).require_endpoints_and_credentials()
    assert info.value.field == field
    assert info.value.reason.startswith("set ")


@pytest.mark.parametrize(
    ("values", "field", "reason", "line"),
    [
        # a model-wide check that raises the typed error itself
        ({"client_secret_file": "/nonexistent/secret"}, "client_secret_file", "cannot read it", "--client-secret-file"),
        # a field validator's plain ValueError, named by pydantic's location
        ({"heartbeat_seconds": "5"}, "heartbeat_seconds", "must be at least", "--heartbeat-seconds"),
        ({"not_a_setting": "x"}, "not_a_setting", "unknown setting", "GENESYS_EXPORTER_NOT_A_SETTING"),
    ],
)
def test_config_errors_carry_field_and_reason(values: dict[str, str], field: str, reason: str, line: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(values)
    assert (info.value.field, info.value.reason.startswith(reason)) == (field, True), info.value
    text = str(info.value)
    assert "\n" not in text and text.startswith("invalid setting ") and line in text


def test_base_urls_alone_satisfy_endpoints() -> None:
    s = Settings(
        api_base_url="http://127.0.0.1:1",
        login_base_url="http://127.0.0.1:1",
        client_id="c",
        client_secret="x",
        source="analytics-websocket",
    )
    s.require_endpoints_and_credentials()


async def test_the_rollover_overlap_backstop_reaches_both_sources() -> None:
    assert Settings().rollover_max_overlap_seconds == 30.0
    assert "rollover_max_overlap_seconds" in error_text(rollover_max_overlap_seconds=0)
    args = build_parser().parse_args(["run", "--rollover-max-overlap-seconds", "7", "--queue-id", "q1"])
    settings = load_settings(_settings_values(args))
    assert settings.rollover_max_overlap_seconds == 7.0
    tokens = cast(Any, SimpleNamespace(http=None))
    for source in ("notifications", "analytics-websocket"):
        built = make_source(
            settings.model_copy(update={"stream_source": source}), tokens, cast(Any, None), StreamState()
        )
        assert built.streams.max_wait == 7.0, source  # type: ignore[attr-defined]
