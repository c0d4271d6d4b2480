"""The simulator plays Genesys Cloud's AudioHook Monitor client against the exporter.

It signs the WebSocket upgrade as Genesys does (HMAC-SHA256 message signature over the six
components, base64 client secret as the key), opens a session for a conversation, and streams
telephony audio of speech synthesised by Debian's `espeak-ng`: the scenario's scripted lines,
resampled to 8 kHz and mu-law encoded, in 100 ms frames on the customer (external) and agent
(internal) channels. It can also misbehave on purpose (bad signature, wrong key, stale or replayed
signature, sequence gaps, pause and resume, abrupt close) so the server's refusals are tested.

This is an independent implementation of the client side (it shares no code with the exporter's
server), so the two check each other.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import io
import json
import secrets
import shutil
import subprocess
import time
import uuid
import wave
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp

RATE = 8000
FRAME_SECONDS = 0.1
COMPONENTS = (
    "@request-target",
    "@authority",
    "audiohook-organization-id",
    "audiohook-session-id",
    "audiohook-correlation-id",
    "x-api-key",
)
DEFAULT_VOICE = "en-us+f2"  # the espeak-ng voice PocketSphinx transcribes best among the stock ones


# -- signing ------------------------------------------------------------------------------------------


def signed_headers(
    url: str,
    api_key: str,
    client_secret: str,
    organization_id: str,
    session_id: str,
    correlation_id: str | None = None,
    now: float | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """The upgrade request's headers, signed as Genesys Cloud signs them (empty secret: unsigned)."""
    parts = urlsplit(url)
    headers = {
        "Audiohook-Organization-Id": organization_id,
        "Audiohook-Session-Id": session_id,
        "Audiohook-Correlation-Id": correlation_id or str(uuid.uuid4()),
        "X-API-KEY": api_key,
        "User-Agent": "GenesysCloud-AudioHook-Client",
    }
    if not client_secret:
        return headers
    created = int(time.time() if now is None else now)
    nonce = nonce or base64.b64encode(secrets.token_bytes(18)).decode()
    listed = " ".join(f'"{name}"' for name in COMPONENTS)
    params = f'({listed});keyid="{api_key}";nonce="{nonce}";alg="hmac-sha256";created={created};expires={created + 30}'
    values = {
        "@request-target": parts.path + (f"?{parts.query}" if parts.query else ""),
        "@authority": parts.netloc,
        "audiohook-organization-id": headers["Audiohook-Organization-Id"],
        "audiohook-session-id": headers["Audiohook-Session-Id"],
        "audiohook-correlation-id": headers["Audiohook-Correlation-Id"],
        "x-api-key": api_key,
    }
    base = "\n".join([*(f'"{name}": {values[name]}' for name in COMPONENTS), f'"@signature-params": {params}'])
    digest = hmac.new(base64.b64decode(client_secret), base.encode(), hashlib.sha256).digest()
    headers["Signature-Input"] = f"sig1={params}"
    headers["Signature"] = f"sig1=:{base64.b64encode(digest).decode()}:"
    return headers


# -- audio ------------------------------------------------------------------------------------------


def espeak_binary() -> str:
    found = shutil.which("espeak-ng")
    if found is None:
        raise RuntimeError("espeak-ng is not installed (Debian package espeak-ng; scripts/install-tools.sh)")
    return found


def synthesise(text: str, voice: str = DEFAULT_VOICE, words_per_minute: int = 130) -> bytes:
    """Speech for `text` as 8 kHz int16 mono, the way a telephone line would carry it."""
    wav = subprocess.run(
        [espeak_binary(), "-v", voice, "-s", str(words_per_minute), "--stdout", text],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    with wave.open(io.BytesIO(wav)) as reader:
        rate = reader.getframerate()
        samples = array("h", reader.readframes(reader.getnframes()))
    return resample(samples, rate, RATE).tobytes()


def resample(samples: array[int], rate: int, target: int) -> array[int]:
    """Linear interpolation after a 3-tap smoothing (a crude anti-alias filter; telephony-grade)."""
    if rate == target or not samples:
        return samples
    smooth = [
        samples[0],
        *((a + 2 * b + c) >> 2 for a, b, c in zip(samples, samples[1:], samples[2:], strict=False)),
        samples[-1],
    ]
    count = int(len(smooth) * target / rate)
    step = rate / target
    out = array("h", bytes(2 * count))
    last = len(smooth) - 1
    for i in range(count):
        position = i * step
        j = int(position)
        fraction = position - j
        following = smooth[j + 1] if j < last else smooth[j]
        out[i] = int(smooth[j] + (following - smooth[j]) * fraction)
    return out


def silence(seconds: float) -> bytes:
    return bytes(2 * int(seconds * RATE))


def _ulaw_byte(sample: int) -> int:
    """G.711 mu-law compression of one int16 sample."""
    sign = 0x80 if sample < 0 else 0
    magnitude = min(-sample if sample < 0 else sample, 32635) + 0x84
    exponent = 7
    mask = 0x4000
    while exponent > 0 and not magnitude & mask:
        exponent -= 1
        mask >>= 1
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


_ULAW_TABLE = bytes(_ulaw_byte(s - 32768) for s in range(65536))


def pcm_to_ulaw(pcm: bytes) -> bytes:
    table = _ULAW_TABLE
    return bytes(table[s + 32768] for s in array("h", pcm))


def interleave(channels: Sequence[bytes], sample_bytes: int) -> bytes:
    """One frame buffer from per-channel buffers of equal length (shorter ones padded with silence)."""
    length = max(len(c) for c in channels)
    padded = [c + bytes(length - len(c)) if len(c) < length else c for c in channels]
    if len(padded) == 1:
        return padded[0]
    out = bytearray(length * len(padded))
    for index, channel in enumerate(padded):
        for offset in range(sample_bytes):
            out[index * sample_bytes + offset :: len(padded) * sample_bytes] = channel[offset::sample_bytes]
    return bytes(out)


# -- the session --------------------------------------------------------------------------------------


def offers(formats: Sequence[str] = ("PCMU",)) -> list[dict[str, Any]]:
    """What Genesys offers for a stereo Monitor integration: both channels, then each alone."""
    return [
        {"type": "audio", "format": fmt, "channels": channels, "rate": RATE}
        for fmt in formats
        for channels in (["external", "internal"], ["external"], ["internal"])
    ]


@dataclass
class AudioHookClient:
    url: str  # ws://host:port/audiohook
    api_key: str
    client_secret: str
    organization_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    session_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    seq: int = 0
    server_seq: int = 0
    samples: int = 0
    received: list[dict[str, Any]] = field(default_factory=list)
    ws: aiohttp.ClientWebSocketResponse | None = None
    http: aiohttp.ClientSession | None = None
    media: dict[str, Any] | None = None
    _reader: asyncio.Task[None] | None = None
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def connect(self, headers: dict[str, str] | None = None) -> None:
        """Upgrade with signed headers (or `headers` as given, to misbehave); raises on refusal."""
        self.http = aiohttp.ClientSession()
        headers = headers or signed_headers(
            self.url, self.api_key, self.client_secret, self.organization_id, self.session_id
        )
        try:
            self.ws = await self.http.ws_connect(self.url, headers=headers, max_msg_size=65536, autoping=True)
        except BaseException:
            await self.http.close()
            raise
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.ws is not None
        async for message in self.ws:
            if message.type is not aiohttp.WSMsgType.TEXT:
                break
            body = json.loads(message.data)
            self.server_seq = body.get("seq", self.server_seq)
            self.received.append(body)
            self._arrived.set()
            if body.get("type") == "pause":
                await self.send("paused")
            elif body.get("type") == "resume":
                await self.send("resumed", {"start": self.position(), "discarded": "PT0S"})
            elif body.get("type") == "disconnect":
                await self.send("close", {"reason": "disconnect"})

    def position(self) -> str:
        return f"PT{self.samples / RATE:.3f}S"

    async def send(self, kind: str, parameters: dict[str, Any] | None = None, *, seq: int | None = None) -> None:
        assert self.ws is not None
        self.seq = self.seq + 1 if seq is None else seq
        message = {
            "version": "2",
            "id": self.session_id,
            "type": kind,
            "seq": self.seq,
            "serverseq": self.server_seq,
            "position": self.position(),
            "parameters": parameters or {},
        }
        await self.ws.send_str(json.dumps(message))

    async def expect(self, kind: str, timeout: float = 10.0) -> dict[str, Any]:
        """The first server message of `kind` (waits for it)."""
        async with asyncio.timeout(timeout):
            while True:
                for body in self.received:
                    if body.get("type") == kind:
                        return body
                self._arrived.clear()
                await self._arrived.wait()

    async def open(
        self,
        conversation_id: str,
        participant_id: str | None = None,
        media: list[dict[str, Any]] | None = None,
        language: str = "en-US",
    ) -> dict[str, Any]:
        await self.send(
            "open",
            {
                "organizationId": self.organization_id,
                "conversationId": conversation_id,
                "participant": {
                    "id": participant_id or str(uuid.uuid4()),
                    "ani": "+1-555-555-1234",
                    "aniName": "Simulated Customer",
                    "dnis": "+1-800-555-6789",
                },
                "media": offers() if media is None else media,
                "language": language,
            },
        )
        opened = await self.expect("opened")
        chosen = opened["parameters"].get("media") or []
        self.media = chosen[0] if chosen else None
        return opened

    async def stream(
        self, customer: bytes, agent: bytes = b"", realtime: float = 1.0, frame_seconds: float = FRAME_SECONDS
    ) -> None:
        """Send both parties' 8 kHz int16 audio as the negotiated media, in frames, paced at `realtime`x
        (0: as fast as the socket takes it)."""
        assert self.ws is not None and self.media is not None
        names = self.media["channels"]
        length = max(len(customer), len(agent))
        per_channel = {"external": customer, "internal": agent}
        pcmu = self.media["format"] == "PCMU"
        padded = [per_channel[name] + bytes(length - len(per_channel[name])) for name in names]
        encoded = interleave([pcm_to_ulaw(c) for c in padded], 1) if pcmu else interleave(padded, 2)
        step = int(frame_seconds * RATE) * (1 if pcmu else 2) * len(names)
        started = time.monotonic()
        for offset in range(0, len(encoded), step):
            frame = encoded[offset : offset + step]
            await self.ws.send_bytes(frame)
            self.samples += len(frame) // ((1 if pcmu else 2) * len(names))
            if realtime > 0:
                due = started + (offset + len(frame)) / step * frame_seconds / realtime
                await asyncio.sleep(max(0.0, due - time.monotonic()))

    async def close(self, reason: str = "end") -> dict[str, Any]:
        await self.send("close", {"reason": reason})
        closed = await self.expect("closed")
        await self.aclose()
        return closed

    async def aclose(self) -> None:
        """Drop the socket (also the 'abrupt close' misbehaviour when no `close` was sent)."""
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        if self.http is not None:
            await self.http.close()


# -- Genesys streaming every live call ----------------------------------------------------------------

# Lines PocketSphinx transcribes well enough from espeak-ng for VADER to find them clearly negative
# (about -0.56 and -0.76) or positive (+0.46, +0.57); bench/ and the tests show what it heard.
HOSTILE_SCRIPT = ("I am really angry.", "I am very angry. This is awful and horrible.")
POLITE_SCRIPT = ("I really appreciate your help.", "That is wonderful, thank you.")
SOUR_AGENTS = frozenset({"agent-sour", "agent-legacy-1"})


class AudioHookCaller:
    """Opens an AudioHook session for every connected call of the simulated org, as Genesys does for
    queues with audio monitoring on, and has the customer speak: hostile lines on the sour agents'
    calls, polite ones elsewhere (espeak-ng, real time, looped until the call ends)."""

    def __init__(self, simulator: Any, url: str, api_key: str, client_secret: str) -> None:
        self.simulator = simulator
        self.url = url
        self.api_key = api_key
        self.client_secret = client_secret
        self.calls: dict[str, asyncio.Task[None]] = {}
        self.scripts: dict[tuple[str, ...], bytes] = {}

    def _script(self, lines: tuple[str, ...]) -> bytes:
        if lines not in self.scripts:
            self.scripts[lines] = b"".join(synthesise(line) + silence(1.5) for line in lines)
        return self.scripts[lines]

    def _connected(self) -> dict[str, str]:
        """conversation -> agent of every call whose agent is connected now."""
        live = self.simulator.notifications.book.live
        return {
            cid: conv.current().agent_id
            for cid, conv in list(live.items())
            if conv.current().state == "connected" and conv.customer_state == "connected"
        }

    async def run(self) -> None:
        try:
            while True:
                connected = self._connected()
                for cid, agent in connected.items():
                    if cid not in self.calls:
                        lines = HOSTILE_SCRIPT if agent in SOUR_AGENTS else POLITE_SCRIPT
                        self.calls[cid] = asyncio.create_task(self._call(cid, lines))
                for cid in [c for c, task in self.calls.items() if task.done() and c not in connected]:
                    del self.calls[cid]
                await asyncio.sleep(0.5)
        finally:
            for task in self.calls.values():
                task.cancel()
            await asyncio.gather(*self.calls.values(), return_exceptions=True)

    async def _call(self, conversation_id: str, lines: tuple[str, ...]) -> None:
        client = AudioHookClient(self.url, self.api_key, self.client_secret)
        try:
            await client.connect()
            await client.open(conversation_id)
            script = await asyncio.to_thread(self._script, lines)
            while conversation_id in self._connected():
                await client.stream(script, realtime=1.0)
            await client.close()
        except (aiohttp.ClientError, TimeoutError, OSError):
            pass  # the exporter went away or refused: the demo goes on without this call's audio
        finally:
            await client.aclose()
