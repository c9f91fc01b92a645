"""Waiting for relay feedback, shared by the backends that poll it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from hal.types import (
    ContactorState,
    ContactorStuckError,
    ContactorWeldedError,
    HalTimeoutError,
    LockState,
)

POLL_S = 0.005
S = TypeVar("S", ContactorState, LockState)


async def wait_feedback(
    read: Callable[[], Awaitable[S]], want: S, timeout: float, what: str
) -> None:
    """Poll ``read()`` until it reports ``want``; the typed error otherwise."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        got = await read()
        if got is want:
            return
        if loop.time() >= end:
            if want is ContactorState.OPEN and got is ContactorState.CLOSED:
                raise ContactorWeldedError(f"{what}: feedback still closed after {timeout} s")
            if want is ContactorState.CLOSED and got is ContactorState.OPEN:
                raise ContactorStuckError(f"{what}: feedback still open after {timeout} s")
            raise HalTimeoutError(f"{what}: feedback {got.value} instead of {want.value}")
        await asyncio.sleep(POLL_S)
