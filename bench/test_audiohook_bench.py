"""Smoke test of the AudioHook benchmark's offline measurement (one line; no timing asserted)."""

from __future__ import annotations

from bench import audiohook_bench


def test_offline_measurement_recognises_and_accounts_for_the_audio() -> None:
    result = audiohook_bench.measure_rtf(("I am really angry.",))
    assert result["utterances"] == 1
    assert 0 < result["speech_seconds"] < result["call_seconds"]
    assert result["rtf_speech"] > 0 and result["sessions_per_core_estimate"] > 0
    assert "angry" in result["transcripts"][0]
