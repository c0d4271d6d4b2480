"""Running tasks: a fail-fast task group (`run_tasks`) and a coroutine until SIGINT/SIGTERM.

`run_tasks` is the exporter's life cycle for `run`, `check` and the demo: every core task in one
task group; one that stops (raises, or returns although it should run forever) is logged in one
line and ends them all with `TaskCrashed`, so the process exits non-zero instead of living on
without a stream. `until_signalled` is shared by `run`, `check` and the simulator's `demo`.

It lives apart from the CLI so that the simulator package can reuse it without importing the
command line (which would make the two packages import each other).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any

log = logging.getLogger("exporter")


class TaskCrashed(Exception):
    """A core task stopped; the run is over (already logged in one line)."""

    def __init__(self, task: str, error: BaseException) -> None:
        super().__init__(f"{task} task stopped: {type(error).__name__}: {error}")
        self.task = task
        self.error = error


def leaf(error: BaseException) -> BaseException:
    """The first real error inside (nested) task-group exception groups."""
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error


async def _guard(name: str, job: Callable[[], Awaitable[None]]) -> None:
    try:
        await job()
    except Exception as exc:
        error = leaf(exc)
        log.error("%s task stopped (%s: %s): ending the exporter", name, type(error).__name__, error)
        log.debug("%s task traceback", name, exc_info=error)
        raise TaskCrashed(name, error) from None
    log.error("%s task stopped (it returned): ending the exporter", name)
    raise TaskCrashed(name, RuntimeError("returned"))


async def run_tasks(jobs: Mapping[str, Callable[[], Awaitable[None]]], duration: float | None = None) -> None:
    """Every job in one task group until cancelled, `duration` passes, or one stops (`TaskCrashed`)."""
    try:
        with contextlib.suppress(TimeoutError):  # only the duration's: task errors arrive as a group
            async with asyncio.timeout(duration), asyncio.TaskGroup() as group:
                for name, job in jobs.items():
                    group.create_task(_guard(name, job), name=name)
    except BaseExceptionGroup as errors:
        crashed, _others = errors.split(TaskCrashed)
        if crashed is None:
            raise
        raise leaf(crashed) from None


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
