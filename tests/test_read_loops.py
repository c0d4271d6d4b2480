"""A flood must not hold the event loop: both read loops hand it back every `FRAMES_PER_TURN` frames.

`ws.receive()` returns without suspending while frames are buffered, so a reader that never awaits
anything else keeps the loop until the buffer runs dry (the freshness bench saw 2 scrapes in a round
under a saturating analytics stream). The fake socket here never suspends at all: without the hand-back
the ticker below would not run once before the reader finished.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any, cast

import aiohttp
import httpx
from pydantic import SecretStr

from genesys_sentiment_exporter.ingest import Ingest
from genesys_sentiment_exporter.oauth import TokenManager
from genesys_sentiment_exporter.sources import supervisor as sup
from genesys_sentiment_exporter.sources.analytics_websocket import AnalyticsWebSocketSource
from genesys_sentiment_exporter.stream_state import StreamState
from genesys_sentiment_exporter.tracker import AgentTracker

TURNS = 10
FRAMES = TURNS * sup.FRAMES_PER_TURN


@dataclass
class Message:
    type: aiohttp.WSMsgType
    data: Any = None


class FloodSocket:
    """Every frame already buffered: `receive` completes without ever suspending."""

    close_code = 1000

    def __init__(self, frame: str, count: int) -> None:
        self.frame, self.left = frame, count

    async def receive(self) -> Message:
        if not self.left:
            return Message(aiohttp.WSMsgType.CLOSE)
        self.left -= 1
        return Message(aiohttp.WSMsgType.TEXT, self.frame)


async def turns_given_while(reader: Any) -> int:
    """How many times another task ran while `reader` drained the flood."""
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    try:
        await reader
        return ticks
    finally:
        task.cancel()


async def test_the_shared_read_loop_hands_the_loop_back_under_a_flood() -> None:
    delivered = 0

    def receive(frame: str | bytes, now: float) -> bool:
        nonlocal delivered
        delivered += 1
        return True

    socket = sup.Socket(cast(sup.Dialer, None), sup.WatchdogPolicy(75.0), lambda: 0.0, receive)
    flood = FloodSocket('{"topicName":"channel.metadata","eventBody":{"message":"WebSocket Heartbeat"}}', FRAMES)
    dog = sup.Watchdog(sup.WatchdogPolicy(75.0), 0.0)
    ticks = await turns_given_while(socket._deliver(cast(aiohttp.ClientWebSocketResponse, flood), dog))
    assert delivered == FRAMES
    assert ticks >= TURNS - 1, f"the loop was handed back {ticks} times in {FRAMES} frames"


async def test_the_analytics_hot_path_hands_the_loop_back_under_a_flood() -> None:
    stream = StreamState()
    ingest = Ingest(AgentTracker())
    async with httpx.AsyncClient() as http:
        tokens = TokenManager("http://127.0.0.1:1", "c", SecretStr("s"), http)
        source = AnalyticsWebSocketSource(
            api_base_url="http://127.0.0.1:1",
            tokens=tokens,
            ingest=ingest,
            stream=stream,
            queue_ids=["q1"],
            agent_ids=[],
        )
        frame = json.dumps({"type": "heartbeat"})
        flood = FloodSocket(frame, FRAMES)
        dog = sup.Watchdog(sup.WatchdogPolicy(75.0), 0.0)
        reader = source._read_frames(1, cast(aiohttp.ClientWebSocketResponse, flood), dog)
        ticks = await turns_given_while(reader)
    assert sum(ingest.messages.values()) == FRAMES, "every frame of the flood still counted once"
    assert ticks >= TURNS - 1, f"the loop was handed back {ticks} times in {FRAMES} frames"
