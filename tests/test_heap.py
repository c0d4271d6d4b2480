"""The exporter's garbage-collector policy (issue 13: a full collection stalled the stream's loop)."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from typing import Any

import pytest

from genesys_sentiment_exporter.app import HeapPolicy


@pytest.fixture
def restored_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


def test_settle_freezes_the_start_up_heap_and_leaves_full_collections_to_the_timer(restored_gc: None) -> None:
    full: list[int] = []

    def watch(phase: str, info: dict[str, int]) -> None:
        if phase == "stop" and info["generation"] == 2:
            full.append(1)

    HeapPolicy().settle()
    assert gc.get_freeze_count() > 1000  # what was imported is never walked again
    young, _middle, rare = gc.get_threshold()
    assert rare == HeapPolicy.rare and young > 0  # young collections run as before
    gc.callbacks.append(watch)
    kept: list[list[int]] = []
    try:
        for _ in range(300 * young):  # long-lived objects: young collections, and the interpreter's
            kept.append([])  # defaults would start full ones well before this ends
    finally:
        gc.callbacks.remove(watch)
    assert len(kept) == 300 * young and full == []


async def test_the_timer_runs_full_collections(restored_gc: None) -> None:
    full = asyncio.Event()

    def watch(phase: str, info: dict[str, Any]) -> None:
        if phase == "stop" and info["generation"] == 2:
            full.set()

    policy = HeapPolicy(full_every=0.05)
    policy.settle()
    gc.callbacks.append(watch)
    task = asyncio.create_task(policy.run())
    try:
        await asyncio.wait_for(full.wait(), timeout=30)
    finally:
        task.cancel()
        gc.callbacks.remove(watch)


async def test_the_command_hands_its_exporter_the_policy() -> None:
    from genesys_sentiment_exporter import cli

    seen: dict[str, Any] = {}

    class Exporter:
        async def run(self, **kwargs: Any) -> None:
            seen.update(kwargs)

    await cli.serve(Exporter())  # type: ignore[arg-type]
    assert isinstance(seen.get("heap"), HeapPolicy)
