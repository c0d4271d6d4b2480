"""`--source notifications,audiohook` and the AudioHook credentials (files or environment only)."""

from __future__ import annotations

from pathlib import Path

import pytest

from genesys_sentiment_exporter.cli import ConfigError, load_settings, main
from genesys_sentiment_exporter.config import Settings

KEY = "c2ltdWxhdGVkLWFwaS1rZXk="
SECRET = "c2VjcmV0c2VjcmV0c2VjcmV0"


def test_source_is_a_comma_separated_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENESYS_EXPORTER_AUDIOHOOK_API_KEY", KEY)
    settings = Settings(source="notifications,audiohook")
    assert settings.source == ["notifications", "audiohook"]
    assert settings.stream_source == "notifications" and settings.audiohook
    monkeypatch.setenv("GENESYS_EXPORTER_SOURCE", "analytics-websocket, audiohook")
    assert Settings().stream_source == "analytics-websocket"
    assert not Settings(source="notifications").audiohook


@pytest.mark.parametrize("value", ["audiohook", "notifications,analytics-websocket", "notifications,nonsense"])
def test_source_needs_exactly_one_stream(value: str) -> None:
    with pytest.raises(ConfigError, match="--source"):
        load_settings({"source": value, "audiohook_api_key": KEY})


def test_credentials_from_files(tmp_path: Path) -> None:
    (tmp_path / "key").write_text(KEY + "\n")
    (tmp_path / "secret").write_text(SECRET)
    settings = load_settings(
        {
            "source": "notifications,audiohook",
            "audiohook_api_key_file": tmp_path / "key",
            "audiohook_client_secret_file": tmp_path / "secret",
        }
    )
    assert settings.audiohook_api_key.get_secret_value() == KEY
    assert settings.audiohook_client_secret.get_secret_value() == SECRET
    assert KEY not in repr(settings) and SECRET not in repr(settings)


def test_audiohook_without_a_key_is_refused_in_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GENESYSCLOUD_OAUTHCLIENT_ID", "client")
    monkeypatch.setenv("GENESYSCLOUD_OAUTHCLIENT_SECRET", "secret")
    assert main(["run", "--source", "notifications,audiohook", "--region", "eu-west-1", "--queue-id", "q"]) == 2
    err = capsys.readouterr().err
    assert "--audiohook.api-key-file" in err and "GENESYS_EXPORTER_AUDIOHOOK_API_KEY" in err
    assert len(err.strip().splitlines()) == 1


def test_unreadable_secret_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"audiohook\.client-secret-file"):
        load_settings(
            {
                "source": "notifications,audiohook",
                "audiohook_api_key": KEY,
                "audiohook_client_secret_file": tmp_path / "no",
            }
        )
