"""Smoke tests of the benchmark machinery at tiny sizes: `.venv/bin/python -m pytest bench -q`.

They check that the harness measures what it claims (every frame accounted for,
the page comparison able to fail, the ledger and profile covering the real path);
no timing is asserted.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
from prometheus_client.exposition import generate_latest

from bench import ingest_bench, ingest_ledger, memory_bench, render_bench
from bench.frames import build_frames, describe
from bench.population import populate
from genesys_sentiment_exporter.metrics import render


def test_frames_are_deterministic_and_mixed() -> None:
    frames = build_frames(3000, agents=50)
    assert frames == build_frames(3000, agents=50)
    mix = describe(frames)
    assert mix["heartbeat"] == 3
    assert mix["sentiment"] > mix["state_only"] > 0


def test_ingest_accounts_for_every_frame_and_profiles_the_real_read() -> None:
    result = ingest_bench.run(3000, 2, agents=100, profile=True)
    assert sum(result.outcomes.values()) == 3000 + 1  # every frame, plus the acknowledgement
    assert result.outcomes["reading"] == result.mix["sentiment"]
    assert result.outcomes["heartbeat"] == result.mix["heartbeat"]
    assert set(result.rates) == {ingest_bench.BASELINE, ingest_bench.SUBJECT}
    assert all(len(rates) == 2 and all(rate > 0 for rate in rates) for rates in result.rates.values())
    assert result.tracked_agents == 100
    assert "read" in result.cprofile and "conversation_fields" in result.cprofile  # the source's own path


def test_ingest_ledger_covers_the_current_path() -> None:
    frames = build_frames(2000, agents=50)
    ledger = ingest_ledger.ledger(frames)
    assert ledger["accounted"] == 2000
    share = ledger["share"]
    assert 0 < share["general_path"] < share["in_place"] < share["conversation"] <= 1
    assert share["in_place"] + share["general_path"] == pytest.approx(share["conversation"])
    assert all(cost > 0 for cost in ledger["us_per_msg"].values())


def test_render_pages_agree() -> None:
    result = render_bench.run(agents=300, repeats=1)
    assert result.check["per_agent_samples"] > 300 * 4


def test_render_comparison_catches_a_wrong_value() -> None:
    ingest, expected = populate(50)
    registry, collector = render_bench.exporter_registry(ingest)
    agent = next(a for a in ingest.tracker.agents.values() if a.scores)
    agent.last_timestamp += 1.0  # the exporter now disagrees with the independent model
    with pytest.raises(AssertionError, match="disagree"):
        render_bench.compare(render(registry), generate_latest(render_bench.stock_registry(expected, collector)), 50)


def test_memory_per_agent_is_measured_with_the_exposition_cache() -> None:
    figure = memory_bench.measure_tracemalloc(500)
    assert figure["agents"] == 500
    assert 100 < figure["bytes_per_agent"] < 100_000
    assert not math.isnan(figure["bytes_per_agent"])
    assert figure["cache_bytes_per_agent"] > 0 and figure["state_bytes_per_agent"] > 0
    assert figure["page_bytes_per_agent"] > 500  # six rows of ~150 bytes per agent were rendered
    rss = memory_bench.measure_rss(500)
    assert rss["agents"] == 500 and rss["peak_rss_mb"] >= rss["rss_mb"] >= rss["interpreter_rss_mb"] * 0.9 > 0


def test_notifications_memory_is_measured_through_the_production_decoder_with_live_calls() -> None:
    figure = memory_bench.measure_notifications(200)
    assert figure["agents"] == figure["live_calls"] == 200
    assert figure["state_bytes_per_agent"] > 1000  # a live call's attribution and transcript state are in it
    assert figure["cache_bytes_per_agent"] > 0 and figure["page_bytes_per_agent"] > 500


def test_transcript_bench_accounts_for_every_frame_and_scores_every_customer_line() -> None:
    from bench import transcript_bench

    result = transcript_bench.run(calls=10, lines_per_call=4, rounds=1, utterances=200)
    assert sum(result.outcomes.values()) == result.frames
    assert result.outcomes["reading"] == 10 * 4  # one scored customer line per batch
    assert result.outcomes["transcript_keepalive"] == 10
    assert result.analyzer_utterances_per_s > 0 and result.ratio > 0


def test_incremental_scrape_pages_agree_and_expiry_is_measured() -> None:
    from bench import scrape_bench

    result = scrape_bench.run(agents=600, repeats=2, slice_seconds=0.0).as_dict()
    assert result["same_samples"]["samples"] > 600 * 4
    assert result["changed_per_scrape"] == 60
    assert result["expire_vs_walk_ratio"] is not None


def test_soak_machinery_accounts_every_frame_through_faults() -> None:
    """A few seconds of the soak: faults land, the stream comes back, nothing goes unaccounted."""
    import asyncio

    from bench import soak

    result = asyncio.run(soak.soak(duration=6.0, cycle=2.0, warmup=0.0, agents=10, seed=3))
    assert sum(result["faults"].values()) >= 2
    assert result["missed_recoveries"] == []
    assert result["frames_checked"] > 0
    assert result["frames_unaccounted"] == 0
    # The RSS judged is the exporter's, measured in a process of its own (not the simulator's).
    assert result["exporter_pid"] != os.getpid() == result["soak_pid"]
    assert result["rss"]["samples"] >= 2 and result["rss"]["start_bytes"] > 0
    assert result["structures"]["end"]["tracker_agents"] > 0


def test_freshness_accounts_every_frame_and_measures_each_reading() -> None:
    """A short paced stream, scraped: every frame accounted (the round raises otherwise)."""
    import asyncio
    import gc

    from bench import freshness_bench

    threshold = gc.get_threshold()
    scraped = asyncio.run(freshness_bench.freshness_round(1000.0, 2.0, 200, True, 0.2))
    assert scraped["readings"] > 800 and scraped["tracked_agents"] == 200
    assert scraped["scrapes_done"] >= 1 and scraped["page_gzip_bytes"] > 0
    assert 0 < scraped["p50_ms"] <= scraped["p99_ms"] <= scraped["max_ms"]
    assert scraped["loop_cpu_us_per_frame"] > 0
    # The exporter's HeapPolicy for the round: young collections only; the process's GC restored after.
    assert scraped["heap_policy"] and scraped["gc_collections"] > 0 and scraped["gc_full_collections"] == 0
    assert gc.get_freeze_count() == 0 and gc.get_threshold() == threshold


def test_the_scrapes_own_loop_cpu_is_accounted_and_the_page_is_whole() -> None:
    """ScrapeCpu runs prepare's steps (timing each) and the render: the page is the exporter's."""
    import asyncio

    import aiohttp
    from prometheus_client.parser import text_string_to_metric_families

    from bench import freshness_bench
    from genesys_sentiment_exporter.ingest import Ingest
    from genesys_sentiment_exporter.model import Reading

    async def scrape() -> tuple[str, float]:
        ingest = Ingest(freshness_bench._tracker(300))
        for i in range(300):
            ingest.conversation(Reading(f"a{i}", "q", f"c{i}", 0.25, 1.7e9), None)
        meters: list[freshness_bench.ScrapeCpu] = []
        async with (
            freshness_bench.metrics_app(ingest, meters) as port,
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{port}/metrics") as response,
        ):
            return await response.text(), meters[0].seconds

    page, seconds = asyncio.run(scrape())
    scores = [
        s.value
        for f in text_string_to_metric_families(page)
        if f.name == "genesys_agent_sentiment_score"
        for s in f.samples
    ]
    assert scores == [0.25] * 300 and seconds > 0


def test_the_paced_server_stamps_each_batch_as_it_leaves() -> None:
    """Frames are serialised once with a placeholder where `eventTime` goes, of the stamp's length."""
    import json

    from bench import freshness_bench
    from bench.frames import build_frames

    events = [json.loads(f) for f in build_frames(50, agents=5, seed=13)]
    frames = freshness_bench._stamped(events)
    stamp = b"2026-12-02T08:00:00.123456Z"
    assert len(stamp) == len(freshness_bench.STAMP)
    stamped = [f.replace(freshness_bench.STAMP, stamp) for f in frames]
    times = [e.get("eventTime") for e in (json.loads(f[2:] if f[1] < 126 else f[4:]) for f in stamped)]
    assert times.count(stamp.decode()) == sum(1 for e in events if "eventTime" in e) > 40


def test_notifications_path_accounts_every_frame() -> None:
    from bench import notifications_bench

    frames = notifications_bench.build(calls=10, lines_per_call=2, repeats=3)
    result = notifications_bench.run(calls=10, lines_per_call=2, rounds=1, repeats=3).as_dict()
    outcomes = result["outcomes_last_round"]
    assert result["frames_per_round"] == len(frames) and sum(outcomes.values()) == len(frames)
    # Each line of each repeat scored (new calls: nothing read as a repeat); of each update's two copies (user
    # and queue topic), one moves the tracker and one is a duplicate, in every repeat.
    updates = (
        sum(1 for frame in frames if frame.startswith(('{"topicName": "v2.users.', '{"topicName": "v2.routing.'))) // 2
    )
    assert outcomes["reading"] == 3 * 10 * 2 and outcomes["duplicate"] == outcomes["state_change"] == updates > 0
    assert result["median_ratio"] > 0 and result["median_ratio_vader"] > 0
    vader = result["analyzer_vader"]
    assert vader["utterances_per_round"] == 3 * 10 * 2 and 0 < vader["ceiling_ratio_with_analyzer"] < 1
    spread = result["ratio_spread"]["path_constant_scorer"]
    assert spread["min"] <= result["median_ratio"] <= spread["max"]


def test_readme_performance_table_is_what_results_json_says() -> None:
    """The README's table is generated (python -m bench.table): a figure edited by hand fails here."""
    import json

    from bench import table

    results = json.loads(table.RESULTS.read_text())
    readme = table.README.read_text()
    assert table.render_readme(readme, results) == readme, "run python -m bench.table"
    assert len(table.rows(results)) >= 5


def test_the_table_says_missed_for_a_missed_budget() -> None:
    from bench import table

    results = {
        "budget": {"memory_max_bytes_per_agent": 1024},
        "memory": {
            "tracemalloc": {
                "agents": 10,
                "bytes_per_agent": 2000.0,
                "state_bytes_per_agent": 1500.0,
                "cache_bytes_per_agent": 500.0,
                "page_bytes_per_agent": 700.0,
            }
        },
    }
    [(_what, measured, budget, status)] = table.rows(results)
    assert "2 000 B" in measured and budget == "<= 1024 B" and status == "**missed**"


def test_results_missed_list_is_recomputed_from_the_recorded_figures(tmp_path: Path) -> None:
    """A run of one bench re-derives `missed` for every recorded figure: an old verdict on a path that
    has since been recorded at another ratio does not linger (it said 0.238x for a path at 0.712x)."""
    from bench import notifications_bench, table

    document = json.loads(Path(__file__).with_name("results.json").read_text())
    document["missed"] = ["notifications: 0.238 x a bare client's rate, budget >= 0.8"]
    path = tmp_path / "results.json"
    path.write_text(json.dumps(document))
    figures = dict(document["notifications"], median_ratio=0.85)
    notifications_bench.record(path, figures)
    written = json.loads(path.read_text())
    assert written["missed"] == table.missed(written)
    assert not any("0.238" in line or line.startswith("ingest, Notifications") for line in written["missed"])
    figures["median_ratio"] = 0.5
    notifications_bench.record(path, figures)
    assert any(
        line.startswith("ingest, Notifications") and "0.500x" in line for line in json.loads(path.read_text())["missed"]
    )


def test_periods_alternate_abba_and_pair_one_scraped_with_one_not() -> None:
    from bench import freshness_bench as fb

    kinds = fb.period_kinds(8)
    assert kinds == [True, False, False, True, True, False, False, True]
    periods = [fb.Period(k, 2.0, 1.0 + k * 0.1, 100_000, 0.03 * k, 2 * k) for k in kinds]
    pairs = fb.pair_up(periods)
    assert len(pairs) == 4 and all(on.scraped and not off.scraped for on, off in pairs)
    # 1.1 s of CPU for 100 000 frames where 1.0 s did them without scrapes: 0.05 s per scrape of two
    result = fb.FreshnessResult(pairs=pairs)
    assert result.pair_ratios == [pytest.approx(0.95)] * 4
    assert result.ingest_ratio == pytest.approx(0.95) and result.pooled_ratio == pytest.approx(0.95)
    assert result.cpu_per_frame_ratio == pytest.approx(1.0 / 1.1)
    assert result.direct_ratio == pytest.approx(0.985)
    with pytest.raises(ValueError):
        fb.pair_up([periods[0], periods[3]])


def test_an_interleaved_round_scrapes_only_in_its_scraped_periods() -> None:
    """A short saturated stream over 300 agents, periods of 0.4 s: every frame accounted (the round
    raises otherwise), scrapes in the scraped periods and none in the others."""
    import asyncio

    from bench import freshness_bench as fb
    from bench.blast_server import BlastServer

    async def round_() -> list[fb.Period]:
        with BlastServer(300_000, agents=300) as server:
            return await fb.interleaved_round(server, 300, period=0.4, warmup=0.2)

    periods = asyncio.run(round_())
    pairs = fb.pair_up(periods)
    assert pairs
    assert all(on.scrapes >= 1 and on.scrape_cpu > 0 and off.scrapes == 0 for on, off in pairs)
    assert all(p.frames > 0 and p.cpu > 0 for p in periods)
