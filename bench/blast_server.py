"""A loopback WebSocket server that blasts a pre-built frame list as fast as the socket takes it.

It runs in its own process (the machine has 2 cores: server on one, the client
under test on the other), so the client's receive rate is never limited by a
server sharing its interpreter. Per connection it:
  1. completes the opening handshake (websockets' sans-I/O `ServerProtocol`),
  2. waits for the client's first text frame (the subscribe message),
  3. answers `{"type":"subscribed",...}` followed by every frame, then a 1000 close,
  4. waits for the client's close frame and drops the TCP connection.
The frames are serialised once (uncompressed) and reused, so the server's cost
per round is a single large write. With `deflate=True` the server accepts
permessage-deflate if offered and encodes per connection (before the ack, so
the encoding time is not in the client's measurement).
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import multiprocessing.connection
from collections.abc import Callable
from typing import Any

from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.server import ServerProtocol

from bench.frames import build_frames, describe, dumps

ACK = dumps({"type": "subscribed", "events": 1, "heartbeat": 30})


async def read_events(reader: asyncio.StreamReader, proto: ServerProtocol) -> list[Any]:
    """The next events the sans-I/O protocol makes of what the client sent ([] at end of stream)."""
    while True:
        events = proto.events_received()
        if events:
            return events
        data = await reader.read(65536)
        if not data:
            proto.receive_eof()
            return []
        proto.receive_data(data)


class ServerProcess:
    """A bench server in its own process (2 cores: the server on one, the client measured on the
    other). `target(pipe, *args)` reports a dict on the pipe once it listens, then serves until the
    pipe says stop (or closes)."""

    def __init__(self, name: str, target: Callable[..., None], args: tuple[Any, ...]) -> None:
        self.name, self.target, self.args = name, target, args
        self._pipe: multiprocessing.connection.Connection | None = None
        self._process: multiprocessing.process.BaseProcess | None = None

    def start(self) -> dict[str, Any]:
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        self._process = ctx.Process(target=self.target, args=(child, *self.args), daemon=True)
        self._process.start()
        child.close()
        self._pipe = parent
        if not parent.poll(120):
            raise RuntimeError(f"{self.name} did not start")
        info: dict[str, Any] = parent.recv()
        return info

    def stop(self) -> None:
        if self._pipe is not None:
            with contextlib.suppress(OSError):
                self._pipe.send("stop")
            self._pipe.close()
        if self._process is not None:
            self._process.join(10)
            if self._process.is_alive():
                self._process.terminate()
                self._process.join(5)


class ChannelServer:
    """A Notifications-style streaming server in its own process (`ServerProcess`): its channel's
    WebSocket address and how many frames it sends to each client."""

    def __init__(self, name: str, target: Callable[..., None], *args: Any) -> None:
        self.url = ""
        self.frames = 0
        self.info: dict[str, Any] = {}  # everything the server reported once it listened
        self._server = ServerProcess(name, target, args)

    def __enter__(self) -> ChannelServer:
        info = self.info = self._server.start()
        self.url, self.frames = f"ws://127.0.0.1:{info['port']}/channels/streaming-bench", info["frames"]
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.stop()


class Blaster:
    def __init__(self, frames: list[str], deflate: bool) -> None:
        self.frames = [f.encode() for f in frames]
        self.deflate = deflate
        self.plain = b"".join(Frame(Opcode.TEXT, f).serialize(mask=False) for f in self.frames)

    def payload(self, subscribe: bytes) -> bytes:
        """The serialised frames sent after the acknowledgement, given the client's first text frame
        (uncompressed connections only): all of them here; a subclass may send a part it names."""
        return self.plain

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        extensions = [ServerPerMessageDeflateFactory()] if self.deflate else None
        proto = ServerProtocol(extensions=extensions, max_size=None)
        try:
            events = await read_events(reader, proto)
            if not events or not isinstance(events[0], Request):
                return
            proto.send_response(proto.accept(events[0]))
            writer.write(b"".join(proto.data_to_send()))
            subscribe: bytes | None = None
            while subscribe is None:
                events = await read_events(reader, proto)
                if not events:
                    return
                subscribe = next(
                    (bytes(e.data) for e in events if isinstance(e, Frame) and e.opcode is Opcode.TEXT), None
                )
            if proto.extensions:
                proto.send_text(ACK.encode())
                for frame in self.frames:
                    proto.send_text(frame)
                writer.write(b"".join(proto.data_to_send()))
            else:
                proto.send_text(ACK.encode())
                writer.write(b"".join(proto.data_to_send()))
                writer.write(self.payload(subscribe))
            proto.send_close(1000, "done")
            writer.write(b"".join(proto.data_to_send()))
            await writer.drain()
            # The client's close reply (or EOF) ends the connection; ignore anything else it sends.
            with contextlib.suppress(asyncio.TimeoutError):
                async with asyncio.timeout(30):
                    while proto.close_rcvd is None:
                        if not await read_events(reader, proto):
                            break
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


async def _serve(
    pipe: multiprocessing.connection.Connection, count: int, agents: int, seed: int, deflate: bool
) -> None:
    frames = build_frames(count, agents=agents, seed=seed)
    blaster = Blaster(frames, deflate)
    server = await asyncio.start_server(blaster.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pipe.send({"port": port, "frames": len(frames), "mix": describe(frames)})
    loop = asyncio.get_running_loop()
    # Serve until the parent says stop (or goes away).
    await loop.run_in_executor(None, pipe.recv)
    server.close()
    await server.wait_closed()


def serve(pipe: multiprocessing.connection.Connection, count: int, agents: int, seed: int, deflate: bool) -> None:
    """Process entry point: report {"port", "frames", "mix"} on the pipe, serve until told to stop."""
    with contextlib.suppress(EOFError, KeyboardInterrupt):
        asyncio.run(_serve(pipe, count, agents, seed, deflate))


class BlastServer:
    """Context manager: the server process, its port and what it sends."""

    def __init__(self, count: int, agents: int = 2000, seed: int = 7, deflate: bool = False) -> None:
        self.args = (count, agents, seed, deflate)
        self.deflate = deflate
        self.port = 0
        self.frames = 0
        self.mix: dict[str, int] = {}
        self._server = ServerProcess("blast server", serve, self.args)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/api/v2/analytics/websocket"

    def __enter__(self) -> BlastServer:
        info = self.info = self._server.start()
        self.port, self.frames, self.mix = info["port"], info["frames"], info["mix"]
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.stop()
