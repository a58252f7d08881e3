"""Password checks, a few at a time, on threads of their own.

An argon2 check with argon2-cffi's default costs (RFC 9106's second
recommended set: 64 MiB, three passes, four lanes) holds 64 MiB for about a
tenth of a second of a fast core. Run a hundred at once and the hub needs
gigabytes and has no CPU left for the public pages; so at most
``max_concurrent_logins`` run at once, on a small thread pool of their own (not
the one the routes share, so waiting logins never hold up a page). The default
is one: its four lanes already keep the two cores of a small server busy, so a
second check at once would add 64 MiB and no throughput. A few more may wait
for their turn (``login_queue``, ``login_wait_s``); beyond that a login is told
to come back (503 with Retry-After), without costing anything.

Logins from a browser or address the account knows wait in a line of their own
that goes first, so a flood of guesses cannot keep a crew from logging in. One
address (an IPv6 /64) has at most one login in progress at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


class PasswordChecks:
    """Runs on the event loop; only the checks themselves run on the pool's threads."""

    def __init__(self, concurrent: int, queue: int, wait_s: float) -> None:
        self.concurrent = concurrent
        self.queue = queue
        self.wait_s = wait_s
        self._free = concurrent
        # Known browsers and addresses first, then everyone else.
        self._lines: tuple[deque[asyncio.Future[None]], ...] = (deque(), deque())
        self._pool = ThreadPoolExecutor(concurrent, thread_name_prefix="password-check")
        self._addresses: set[str] = set()
        self.running = 0

    def hold(self, address: str) -> bool:
        """Take the address's one slot; False when another login of it is in progress."""
        if address in self._addresses:
            return False
        self._addresses.add(address)
        return True

    def let_go(self, address: str) -> None:
        self._addresses.discard(address)

    async def run(self, known: bool, check: Callable[[], T]) -> tuple[bool, T | None]:
        """(True, result) once ``check`` ran; (False, None) when the hub is too busy."""
        if not await self._acquire(known):
            return False, None
        loop = asyncio.get_running_loop()
        try:
            submitted: Future[T] = self._pool.submit(check)
        except BaseException:
            self._release()
            raise
        self.running += 1

        def done(_: object) -> None:
            # A check goes on if its request is cancelled: its slot is free only when it ends.
            loop.call_soon_threadsafe(self._finished)

        submitted.add_done_callback(done)
        return True, await asyncio.wrap_future(submitted)

    def _finished(self) -> None:
        self.running -= 1
        self._release()

    async def _acquire(self, known: bool) -> bool:
        if self._free > 0 and not any(self._lines):
            self._free -= 1
            return True
        line = self._lines[0 if known else 1]
        if len(line) >= self.queue:
            return False
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        line.append(turn)
        try:
            async with asyncio.timeout(self.wait_s):
                await turn
        except BaseException as exc:
            if turn.done() and not turn.cancelled():
                if isinstance(exc, TimeoutError):
                    return True  # the turn came just as the time ran out: take it
                self._release()  # cancelled after being handed the slot: pass it on
            else:
                turn.cancel()
                with contextlib.suppress(ValueError):
                    line.remove(turn)
            if isinstance(exc, TimeoutError):
                return False
            raise
        return True

    def _release(self) -> None:
        for line in self._lines:
            while line:
                turn = line.popleft()
                if not turn.done():
                    turn.set_result(None)
                    return
        self._free += 1

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
