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


def test_record_keeps_every_other_key_and_the_replaced_run_in_history(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    before = {"when": "t0", "socket": {"median_ratio_vader": 0.2, "clients": {"bare": {"frames_per_s_median": 9.0}}}}
    path.write_text(json.dumps({"ingest": {"median_ratio": 0.7}, "transcript": before}))
    transcript_bench.record(path, {"when": "t1", "socket": {"median_ratio_vader": 0.3}})
    document = json.loads(path.read_text())
    assert document["ingest"] == {"median_ratio": 0.7}
    assert document["transcript"]["socket"] == {"median_ratio_vader": 0.3}
    (old,) = document["transcript"]["history"]
    assert (old["when"], old["median_ratio_vader"], old["frames_per_s_median"]) == ("t0", 0.2, {"bare": 9.0})
    for n in range(8):
        transcript_bench.record(path, {"when": f"t{n + 2}"}, keep=3)
    history = json.loads(path.read_text())["transcript"]["history"]
    assert [h["when"] for h in history] == ["t6", "t7", "t8"]  # bounded, oldest first
