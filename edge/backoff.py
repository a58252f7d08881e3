"""Exponential backoff with jitter, for reconnecting and for failing sources.

Without jitter, every device of a town that lost its broker (or its ticketing
server) at the same moment retries at the same moments, in lock-step, and the
server that comes back is hit by all of them at once. "Equal jitter" keeps half
of each delay and randomises the other half: the delay still grows
exponentially, never drops below half the nominal value, and the devices drift
apart after the first retry. (paho's own reconnect_delay_set has no jitter,
which is why the publisher runs its own reconnect loop with this.)
"""

from __future__ import annotations

import random


class Backoff:
    def __init__(
        self,
        initial_s: float = 1.0,
        max_s: float = 60.0,
        factor: float = 2.0,
        rng: random.Random | None = None,
    ) -> None:
        if initial_s <= 0 or max_s < initial_s or factor < 1:
            raise ValueError("need 0 < initial_s <= max_s and factor >= 1")
        self.initial_s = initial_s
        self.max_s = max_s
        self.factor = factor
        self.failures = 0
        self._rng = rng or random.Random()

    def nominal(self) -> float:
        """The delay before jitter for the next attempt: initial, doubling, capped."""
        # The exponent is bounded so that months of failures cannot overflow a float.
        return min(self.max_s, self.initial_s * self.factor ** min(self.failures, 64))

    def next(self) -> float:
        """Count one more failure and return how long to wait before trying again."""
        cap = self.nominal()
        self.failures += 1
        return cap / 2 + self._rng.uniform(0, cap / 2)

    def reset(self) -> None:
        self.failures = 0
