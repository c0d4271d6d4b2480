"""Telephony decoding and the per-channel utterance segmenter (scripted VAD decisions, no clock)."""

from __future__ import annotations

from array import array

import pytest
from genesys_cloud_simulator.audiohook_client import interleave, pcm_to_ulaw

from genesys_sentiment_exporter.audiohook.audio import split_channels, ulaw_to_pcm16, upsample_2x
from genesys_sentiment_exporter.audiohook.segment import FRAME_BYTES, Segmenter, SegmenterConfig


def pcm(*samples: int) -> bytes:
    return array("h", samples).tobytes()


def test_ulaw_known_values_and_round_trip() -> None:
    # G.711: 0xFF and 0x7F are zero, 0x80 / 0x00 the loudest positive / negative.
    assert array("h", ulaw_to_pcm16(bytes([0xFF, 0x7F, 0x80, 0x00]))).tolist() == [0, 0, 32124, -32124]
    original = pcm(0, 100, -100, 1000, -1000, 20000, -20000)
    decoded = array("h", ulaw_to_pcm16(pcm_to_ulaw(original)))
    for a, b in zip(array("h", original), decoded, strict=True):
        assert abs(a - b) <= max(8, abs(a) // 16)  # mu-law keeps ~4 % of magnitude


def test_stereo_frames_split_in_channel_order() -> None:
    external, internal = pcm(1, 2, 3), pcm(-1, -2, -3)
    l16 = interleave([external, internal], 2)
    assert split_channels(l16, "L16", 2) == [external, internal]
    pcmu = interleave([pcm_to_ulaw(external), pcm_to_ulaw(internal)], 1)
    left, right = split_channels(pcmu, "PCMU", 2)
    assert left == ulaw_to_pcm16(pcm_to_ulaw(external)) and right == ulaw_to_pcm16(pcm_to_ulaw(internal))


def test_upsampling_interpolates() -> None:
    assert array("h", upsample_2x(pcm(0, 100, 200))).tolist() == [0, 50, 100, 150, 200, 200]


def frames(pattern: str) -> bytes:
    """One 30 ms frame per character; its first byte says whether the scripted VAD hears speech."""
    return b"".join((b"\x01" if c == "1" else b"\x00") * FRAME_BYTES for c in pattern)


def segmenter(**config: int | float) -> Segmenter:
    return Segmenter(lambda frame: frame[0] == 1, SegmenterConfig(**config))  # type: ignore[arg-type]


def test_utterance_starts_with_preroll_and_ends_after_silence() -> None:
    seg = segmenter()
    out = seg.feed(frames("0" * 20 + "1" * 40 + "0" * 20))
    assert len(out) == 1
    (utterance,) = out
    assert utterance.start == pytest.approx((20 - 4) * 0.03)  # 300 ms of pre-roll before the start decision
    assert utterance.end == pytest.approx(60 * 0.03)  # speech ended after frame 60
    assert not seg.in_speech


def test_short_pauses_do_not_split_and_clicks_are_not_utterances() -> None:
    seg = segmenter()
    assert seg.feed(frames("1" * 30 + "0" * 10 + "1" * 30 + "0" * 20)) != []
    assert len(seg.feed(b"")) == 0
    seg = segmenter()
    assert seg.feed(frames("0" * 5 + "1111110000" + "0" * 30)) == []  # 180 ms of voice


def test_long_speech_is_cut_and_a_gap_flushes() -> None:
    seg = segmenter(max_seconds=1.5)
    cut = seg.feed(frames("1" * 120))
    assert len(cut) >= 2
    flushed = seg.gap()
    assert len(flushed) == 1 and not seg.in_speech


def test_feeding_after_a_timeline_jump_closes_the_open_utterance() -> None:
    seg = segmenter()
    assert seg.feed(frames("1" * 30), 0.0) == []
    out = seg.feed(frames("1" * 5), 5.0)  # 4.1 s of audio never arrived
    assert len(out) == 1 and out[0].end == pytest.approx(0.9)


def test_partial_frames_are_kept_until_complete() -> None:
    seg = segmenter()
    data = frames("1" * 30 + "0" * 20)
    out = []
    for offset in range(0, len(data), 333):
        out += seg.feed(data[offset : offset + 333])
    assert len(out) == 1
