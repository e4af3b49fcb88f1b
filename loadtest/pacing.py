"""Pacing of an ingestion user: sends on a fixed schedule that late responses do not shift.

Locust's `constant_throughput` waits one period minus the time the last request took, so a slow
response costs its user that much rate for good. A campaign judged on throughput needs the
user to make up for it: `SchedulePacer` keeps the user's send times on a fixed grid, so that
after a slow response the next batch goes out at once. That is also what a mobile SDK does:
it keeps the events it could not send and sends them once the service responds again. A user
catches up at most `max_lag_s` seconds. Further behind, it starts a new grid from now, so a
long outage does not end in a burst of everything missed.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

# How far a user catches up after slow responses; behind by more, it skips the missed sends.
# Ten seconds covers most compaction pauses of the embedded store: 4 to 16 s as its store filled,
# on one core of a 2-core VM (docs/benchmarks.md).
MAX_LAG_S = 10.0


class SchedulePacer:
    """The wait before each send, for `rate` sends per second on a fixed grid.

    The grid starts at a random point of the first period, so that users started together do
    not send together.
    """

    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_lag_s: float = MAX_LAG_S,
        rng: random.Random | None = None,
    ) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be positive, got {rate}")
        self.period = 1.0 / rate
        self.clock = clock
        self.max_lag_s = max_lag_s
        self.next_send = clock() + (rng or random).uniform(0.0, self.period)

    def wait(self) -> float:
        """Return the seconds to wait before the next send, and move the grid one period on."""
        now = self.clock()
        if self.next_send < now - self.max_lag_s:
            self.next_send = now
        wait = max(0.0, self.next_send - now)
        self.next_send += self.period
        return wait
