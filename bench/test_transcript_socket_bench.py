"""The transcript bench's socket measurement runs end to end and accounts for every frame."""

from __future__ import annotations

import json
from pathlib import Path

from bench import transcript_bench


def test_socket_rounds_account_for_every_frame_and_score_every_customer_line() -> None:
    result = transcript_bench.run_socket(calls=6, lines_per_call=3, rounds=1)
    figures = result.as_dict()
    scored = figures["outcomes_last_round"][transcript_bench.SCORED]
    assert sum(scored.values()) == result.frames
    assert scored["reading"] == 6 * 3  # one scored customer line per batch
    assert figures["outcomes_last_round"][transcript_bench.UNSCORED]["reading"] == 6 * 3
    assert figures["outcomes_last_round"][transcript_bench.BARE] == {"decoded": result.frames}
    assert figures["median_ratio_vader"] > 0 and figures["median_ratio_without_scoring"] > 0


def test_record_keeps_every_other_key(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"ingest": {"median_ratio": 0.7}, "transcript": {"old": 1}}))
    transcript_bench.record(path, {"socket": {"median_ratio_vader": 0.2}})
    assert json.loads(path.read_text()) == {
        "ingest": {"median_ratio": 0.7},
        "transcript": {"socket": {"median_ratio_vader": 0.2}},
    }
