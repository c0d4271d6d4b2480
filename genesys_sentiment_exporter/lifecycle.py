"""Running a coroutine until SIGINT/SIGTERM: shared by `run`, `check` and the simulator's `demo`.

It lives apart from the CLI so that the simulator package can reuse it without importing the
command line (which would make the two packages import each other).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Coroutine
from typing import Any


async def until_signalled(main: Callable[[], Coroutine[Any, Any, Any]]) -> None:
    """Await `main()` until it returns or a stop signal arrives; its exception propagates."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    task = asyncio.create_task(main())
    waiter = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    for pending in (task, waiter):
        pending.cancel()
    for finished in done:
        if finished is task and not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]
    with contextlib.suppress(asyncio.CancelledError):
        await task
