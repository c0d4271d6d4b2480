"""Settings: every command-line flag is also an environment variable (pydantic-settings).

Flags use Prometheus' own spellings (`--web.listen-address`, `--log.level`);
the environment uses `GENESYS_EXPORTER_<FIELD>` except for the credentials,
which keep the names the Genesys ecosystem already uses (Terraform provider,
CLI, blueprints): `GENESYSCLOUD_OAUTHCLIENT_ID`, `..._SECRET`, `GENESYSCLOUD_REGION`.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from genesys_sentiment_exporter.analysis import DEFAULT_ANALYZER, AnalyzerOptions, available
from genesys_sentiment_exporter.hosts import is_loopback
from genesys_sentiment_exporter.identity import AgentIdentity, read_key

ENV_PREFIX = "GENESYS_EXPORTER_"
DEFAULT_LISTEN = ":8729"  # outside 9100-9999, which the Prometheus port registry has fully allocated

# Region name -> domain (shared/genesys-platform-notes.md). API host api.{domain}, login host login.{domain}.
REGIONS: dict[str, str] = {
    "us-east-1": "mypurecloud.com",
    "us-east-2": "use2.us-gov-pure.cloud",
    "us-west-2": "usw2.pure.cloud",
    "ca-central-1": "cac1.pure.cloud",
    "sa-east-1": "sae1.pure.cloud",
    "mx-central-1": "mxc1.pure.cloud",
    "eu-west-1": "mypurecloud.ie",
    "eu-west-2": "euw2.pure.cloud",
    "eu-central-1": "mypurecloud.de",
    "eu-central-2": "euc2.pure.cloud",
    "me-central-1": "mec1.pure.cloud",
    "ap-south-1": "aps1.pure.cloud",
    "ap-southeast-1": "apse1.pure.cloud",
    "ap-southeast-2": "mypurecloud.com.au",
    "ap-northeast-1": "mypurecloud.jp",
    "ap-northeast-2": "apne2.pure.cloud",
    "ap-northeast-3": "apne3.pure.cloud",
}

MIN_HEARTBEAT = 10


class ConfigError(ValueError):
    """A setting that cannot work: which one (`field`, a Settings field name) and why (`reason`).

    Typed so that callers name the setting the way the operator sets it (the CLI: flag and
    environment variable, `shown_as`) instead of parsing a message; still one line when printed.
    """

    def __init__(self, field: str, reason: str, shown_as: str = "") -> None:
        super().__init__(f"invalid setting {shown_as or field}: {reason}")
        self.field = field
        self.reason = reason


def region_domain(region: str) -> str:
    """A region name or one of the known domains, normalised to the domain."""
    value = region.strip().lower()
    if value in REGIONS:
        return REGIONS[value]
    for prefix in ("api.", "login."):
        if value.startswith(prefix):
            value = value[len(prefix) :]
    if value in REGIONS.values():
        return value
    names = ", ".join(REGIONS)
    raise ValueError(f"unknown region {region!r}: use a region name ({names}) or its domain")


def check_base_url(url: str) -> str:
    """https for everything; plain http only where the traffic cannot leave the machine."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} is not an http(s) URL")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ValueError(f"{url!r}: plain http is allowed only for loopback hosts; use https")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"{url!r}: give the base URL only (scheme, host and port)")
    return url.rstrip("/")


def parse_listen_address(address: str) -> tuple[str, int]:
    """`host:port`, `:port` or `[v6]:port` -> (host, port); an empty host binds every interface."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{address!r} is not host:port")
    return host.strip("[]"), int(port)


def _split(value: object) -> object:
    """Comma-separated ids, from the environment or inside repeated flags (`--queue-id a,b`)."""
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list):
        return [item.strip() for entry in value for item in str(entry).split(",") if item.strip()]
    return value


IdList = Annotated[list[str], NoDecode]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, populate_by_name=True, extra="forbid", validate_default=True
    )

    client_id: str = Field("", validation_alias="GENESYSCLOUD_OAUTHCLIENT_ID")
    client_secret: SecretStr = Field(SecretStr(""), validation_alias="GENESYSCLOUD_OAUTHCLIENT_SECRET")
    client_secret_file: Path | None = None
    region: str = Field("", validation_alias="GENESYSCLOUD_REGION")
    api_base_url: str = ""
    login_base_url: str = ""
    # Comma-separated: one stream (notifications or analytics-websocket), optionally plus audiohook.
    source: Annotated[list[Literal["analytics-websocket", "notifications", "audiohook"]], NoDecode] = ["notifications"]
    queue_id: IdList = []
    agent_id: IdList = []
    heartbeat_seconds: int = 30
    # A rollover's old socket goes once it has caught up with its replacement, or after this at most.
    rollover_max_overlap_seconds: float = Field(30.0, gt=0, le=3600)
    window_size: int = Field(5, ge=1, le=100)
    grace_seconds: float = Field(5.0, ge=0, le=600)
    idle_seconds: float = Field(900.0, gt=0)
    max_agents: int = Field(20_000, ge=1)
    token_refresh_margin_seconds: float = Field(300.0, ge=0)
    web_listen_address: str = DEFAULT_LISTEN
    web_telemetry_path: str = "/metrics"
    web_config_file: Path | None = None
    web_external_url: str = ""
    # What one HTTP client may take from the process that also carries the stream (web.WebLimits).
    web_max_requests: int = Field(40, ge=1, le=10_000)
    web_max_connections: int = Field(512, ge=1, le=100_000)
    web_read_timeout: float = Field(15.0, gt=0, le=3600)
    # Notifications source (the real platform's API)
    sentiment_scale: Literal["unit", "percent", "auto"] = "auto"
    notifications_max_channels: int = Field(20, ge=1, le=20)
    notifications_topics_per_channel: int = Field(1000, ge=1, le=1000)
    notifications_channel_probe_seconds: float = Field(60.0, gt=0)
    api_requests_per_minute: int = Field(300, ge=1)
    resolve_agent_names: bool = True
    # Configuration audit (audit.py): `audit`, `check`'s first step, and run's coverage metric timer.
    audit_all_queues: bool = False
    audit_interval_seconds: float = Field(3600.0, ge=0)
    # Privacy (identity.py): how agents are named in /metrics; the key file for pseudonyms.
    agent_identity: Literal["plain", "pseudonymous", "none"] = "plain"
    agent_identity_key_file: Path | None = None
    # Where supervisors open an agent in Genesys Cloud; default from the region: https://apps.{domain}
    ui_url: str = ""
    # AudioHook Monitor server (--source ...,audiohook): credentials from files or the environment only.
    audiohook_api_key: SecretStr = SecretStr("")
    audiohook_api_key_file: Path | None = None
    audiohook_client_secret: SecretStr = SecretStr("")
    audiohook_client_secret_file: Path | None = None
    audiohook_workers: int = Field(0, ge=0, le=256)  # 0: one per CPU core
    audiohook_engine: str = "pocketsphinx"
    audiohook_model_dir: Path | None = None
    audiohook_max_lag_seconds: float = Field(10.0, gt=0, le=600)
    # Utterance sentiment (analysis/): which analyzer scores transcript utterances, and its inputs.
    sentiment_analyzer: str = DEFAULT_ANALYZER
    sentiment_model_dir: Path | None = None
    sentiment_languages: IdList = []
    # Whose words are scored: customer (default); agent is opt-in (workplace monitoring: see README).
    score_parties: IdList = ["customer"]
    # How long a call's post-call sentiment topic stays subscribed after the call (Genesys scores after).
    postcall_hold_seconds: float = Field(600.0, ge=0, le=86_400)
    log_level: Literal["debug", "info", "warn", "error"] = "info"
    log_format: Literal["logfmt", "json"] = "logfmt"

    @field_validator("queue_id", "agent_id", "sentiment_languages", "score_parties", "source", mode="before")
    @classmethod
    def _ids(cls, value: object) -> object:
        return _split(value)

    @field_validator("source")
    @classmethod
    def _sources(cls, value: list[str]) -> list[str]:
        streams = [name for name in value if name != "audiohook"]
        if len(streams) != 1:
            raise ValueError(
                "name exactly one stream, notifications or analytics-websocket, optionally with audiohook "
                "(e.g. notifications,audiohook): AudioHook audio needs the stream to attribute calls to agents"
            )
        return list(dict.fromkeys(value))

    @field_validator("heartbeat_seconds")
    @classmethod
    def _heartbeat(cls, value: int) -> int:
        if value < MIN_HEARTBEAT:
            raise ValueError(
                f"must be at least {MIN_HEARTBEAT} seconds: low heartbeats trip the gateway's rate limits "
                "during busy periods (30 is recommended)"
            )
        if value > 3600:
            raise ValueError("must be at most 3600 seconds")
        return value

    @field_validator("region")
    @classmethod
    def _region(cls, value: str) -> str:
        return region_domain(value) if value else ""

    @field_validator("api_base_url", "login_base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        return check_base_url(value) if value else ""

    @field_validator("web_listen_address")
    @classmethod
    def _listen(cls, value: str) -> str:
        parse_listen_address(value)
        return value

    @field_validator("web_telemetry_path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/") or value in ("/", "/-/healthy", "/-/ready"):
            raise ValueError("must be a path such as /metrics, distinct from /, /-/healthy and /-/ready")
        return value

    @field_validator("web_external_url")
    @classmethod
    def _external_url(cls, value: str) -> str:
        if not value:
            return ""
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            raise ValueError(f"{value!r} is not an http(s) URL such as https://sentiment-exporter.example.com")
        return value.rstrip("/")

    @field_validator("ui_url")
    @classmethod
    def _ui_url(cls, value: str) -> str:
        if not value:
            return ""
        parts = urlsplit(value)
        if parts.scheme != "https" or not parts.hostname or parts.query or parts.fragment:
            raise ValueError(f"{value!r} is not an https base URL such as https://apps.mypurecloud.ie")
        return value.rstrip("/")

    @field_validator("sentiment_analyzer")
    @classmethod
    def _analyzer(cls, value: str) -> str:
        known = available()
        if value not in known:
            raise ValueError(f"unknown analyzer {value!r}; known: {', '.join(sorted(known))}")
        return value

    @field_validator("score_parties")
    @classmethod
    def _parties(cls, value: list[str]) -> list[str]:
        unknown = [p for p in value if p not in ("customer", "agent")]
        if unknown or not value:
            raise ValueError("give customer, agent or customer,agent")
        return list(dict.fromkeys(value))

    @model_validator(mode="after")
    def _analyzer_model(self) -> Settings:
        if self.sentiment_analyzer == "onnx" and self.sentiment_model_dir is None:
            raise ConfigError(
                "sentiment_model_dir",
                "--sentiment-analyzer onnx needs --sentiment-model-dir (a directory with "
                "model.onnx, tokenizer.json and config.json)",
            )
        return self

    @model_validator(mode="after")
    def _identity_key(self) -> Settings:
        if self.agent_identity == "pseudonymous" and self.agent_identity_key_file is None:
            raise ConfigError(
                "agent_identity_key_file",
                "--agent-identity pseudonymous needs --agent-identity-key-file "
                "(a file holding a secret key of at least 16 bytes, kept across restarts)",
            )
        if self.agent_identity == "pseudonymous" and self.agent_identity_key_file is not None:
            read_key(self.agent_identity_key_file)  # fails now, with one line, not at the first agent
        return self

    @model_validator(mode="after")
    def _secret_file(self) -> Settings:
        if self.client_secret_file is not None:
            try:
                text = self.client_secret_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError("client_secret_file", f"cannot read it ({exc.strerror})") from None
            self.client_secret = SecretStr(text)
        return self

    @model_validator(mode="after")
    def _audiohook_credentials(self) -> Settings:
        for field in ("audiohook_api_key", "audiohook_client_secret"):
            path: Path | None = getattr(self, f"{field}_file")
            if path is not None:
                try:
                    setattr(self, field, SecretStr(path.read_text(encoding="utf-8").strip()))
                except OSError as exc:
                    raise ConfigError(f"{field}_file", f"cannot read it ({exc.strerror})") from None
        return self

    # -- derived ---------------------------------------------------------------------------------
    @property
    def stream_source(self) -> str:
        """The stream that attributes calls and readings: notifications or analytics-websocket."""
        return next(name for name in self.source if name != "audiohook")

    @property
    def audiohook(self) -> bool:
        return "audiohook" in self.source

    def resolved_api_base_url(self) -> str:
        return self.api_base_url or (f"https://api.{self.region}" if self.region else "")

    def resolved_ui_url(self) -> str:
        """The region's Genesys Cloud web app (apps.{domain}), for links in alerts."""
        return self.ui_url or (f"https://apps.{self.region}" if self.region else "")

    def identity(self) -> AgentIdentity:
        key = b""
        if self.agent_identity == "pseudonymous" and self.agent_identity_key_file is not None:
            key = read_key(self.agent_identity_key_file)
        if self.agent_identity == "none":
            key = secrets.token_bytes(32)  # agents are keyed in memory only; nothing per agent is exported
        return AgentIdentity(self.agent_identity, key)

    def analyzer_options(self) -> AnalyzerOptions:
        return AnalyzerOptions(self.sentiment_model_dir, tuple(self.sentiment_languages))

    def resolved_login_base_url(self) -> str:
        return self.login_base_url or (f"https://login.{self.region}" if self.region else "")

    def require_endpoints_and_credentials(self) -> None:
        """`run` and `check` need somewhere to connect and something to authenticate with."""
        if not self.resolved_api_base_url() or not self.resolved_login_base_url():
            raise ConfigError(
                "region",
                "set GENESYSCLOUD_REGION (e.g. eu-west-1 or mypurecloud.ie) or both "
                "--api-base-url and --login-base-url",
            )
        if not self.client_id:
            raise ConfigError("client_id", "set GENESYSCLOUD_OAUTHCLIENT_ID")
        if not self.client_secret.get_secret_value():
            raise ConfigError("client_secret", "set GENESYSCLOUD_OAUTHCLIENT_SECRET or --client-secret-file")
        if self.audiohook and not self.audiohook_api_key.get_secret_value():
            # Checked here (run, check), not at parse time: `demo` makes up its own key.
            raise ConfigError(
                "audiohook_api_key_file",
                "--source audiohook needs the API key of the Genesys AudioHook integration "
                "(--audiohook.api-key-file or GENESYS_EXPORTER_AUDIOHOOK_API_KEY)",
            )
        if self.stream_source == "notifications" and not self.agent_id and not self.queue_id:
            raise ConfigError(
                "agent_id",
                "the notifications source needs at least one --agent-id or --queue-id (it learns "
                "which agent a conversation's sentiment belongs to from their conversation topics)",
            )
