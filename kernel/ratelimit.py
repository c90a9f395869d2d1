"""Per-key request and token budgets per minute (token buckets).

Tokens are charged at admission as OpenAI does: an estimate of the prompt plus the
request's max_tokens, so one request cannot overdraw a budget by generating long.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from dataclasses import dataclass, field

# Budgets tracked at once. A bucket idle for a minute is full again, as good as new, so the
# least recently used go first: chat-channel users (one budget each, and anyone can make up
# new ones) cannot grow the table without bound.
MAX_TRACKED = 100_000


@dataclass
class TokenBucket:
    per_minute: float
    level: float = field(init=False)
    stamp: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.level = self.per_minute

    def _refill(self, now: float) -> None:
        self.level = min(self.per_minute, self.level + (now - self.stamp) * self.per_minute / 60)
        self.stamp = now

    def wait_for(self, amount: float, now: float) -> float:
        """0 if `amount` fits now, else seconds until it will (never fits: inf)."""
        self._refill(now)
        if amount > self.per_minute:
            return math.inf
        missing = amount - self.level
        return 0.0 if missing <= 0 else missing * 60 / self.per_minute

    def take(self, amount: float) -> None:
        self.level -= amount


@dataclass
class KeyBudget:
    requests: TokenBucket
    tokens: TokenBucket


class RateLimiter:
    def __init__(self, default_rpm: int, default_tpm: int, max_tracked: int = MAX_TRACKED):
        self.default_rpm = default_rpm
        self.default_tpm = default_tpm
        self.max_tracked = max_tracked
        self._budgets: OrderedDict[str, KeyBudget] = OrderedDict()

    def admit(self, key_id: str, tokens: int, *, rpm: int | None = None,
              tpm: int | None = None) -> float:
        """Charge one request of `tokens`; return 0, or the seconds to wait before retrying."""
        budget = self._budgets.get(key_id)
        if budget is None:
            budget = KeyBudget(TokenBucket(rpm or self.default_rpm),
                               TokenBucket(tpm or self.default_tpm))
            self._budgets[key_id] = budget
            while len(self._budgets) > self.max_tracked:
                self._budgets.popitem(last=False)
        else:
            self._budgets.move_to_end(key_id)
        now = time.monotonic()
        wait = max(budget.requests.wait_for(1, now), budget.tokens.wait_for(tokens, now))
        if wait == 0:
            budget.requests.take(1)
            budget.tokens.take(tokens)
        return wait
