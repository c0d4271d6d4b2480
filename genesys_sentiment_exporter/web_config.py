"""`--web.config.file`: the exporter-toolkit file format Prometheus exporters share.

Supported: `tls_server_config` (`cert_file`, `key_file`, optional `client_ca_file`
for mutual TLS) and `basic_auth_users` (user -> bcrypt hash). Unknown keys are
refused rather than silently ignored, so nobody believes a setting is active
when it is not.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


@dataclass
class WebConfig:
    tls: ssl.SSLContext | None = None
    basic_auth_users: dict[str, bytes] = field(default_factory=dict)


def _relative(base: Path, value: Any, key: str) -> Path:
    if not isinstance(value, str) or not value:
        raise ValueError(f"web config: {key} must be a file path")
    path = Path(value)
    return path if path.is_absolute() else base / path


def load_web_config(path: Path) -> WebConfig:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise ValueError(f"web config {path}: cannot read it ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"web config {path}: not valid YAML ({exc.__class__.__name__})") from None
    if not isinstance(data, dict):
        raise ValueError(f"web config {path}: expected a mapping")
    unknown = set(data) - {"tls_server_config", "basic_auth_users"}
    if unknown:
        raise ValueError(f"web config {path}: unsupported keys {sorted(unknown)}")
    config = WebConfig()
    base = path.parent
    tls = data.get("tls_server_config")
    if tls:
        if not isinstance(tls, dict) or set(tls) - {"cert_file", "key_file", "client_ca_file"}:
            raise ValueError("web config: tls_server_config takes cert_file, key_file and client_ca_file")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(
                _relative(base, tls.get("cert_file"), "cert_file"),
                _relative(base, tls.get("key_file"), "key_file"),
            )
            if tls.get("client_ca_file"):
                context.load_verify_locations(_relative(base, tls["client_ca_file"], "client_ca_file"))
                context.verify_mode = ssl.CERT_REQUIRED
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"web config: cannot load TLS files ({exc})") from None
        config.tls = context
    users = data.get("basic_auth_users") or {}
    if not isinstance(users, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and v.startswith("$2") for k, v in users.items()
    ):
        raise ValueError("web config: basic_auth_users maps user names to bcrypt hashes")
    config.basic_auth_users = {k: v.encode() for k, v in users.items()}
    return config
