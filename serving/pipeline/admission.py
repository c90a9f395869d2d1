"""Admit: a bounded number of sequences per tier (a request of 8 prompts with n=4 is 32),
none while draining; requests counted in flight for the drain."""

from __future__ import annotations

from collections.abc import Sequence

from kernel.errors import APIError
from serving import metrics

DRAIN_RETRY_AFTER_S = 5
OVERLOAD_RETRY_AFTER_S = 2


class Admission:
    def __init__(self, tiers: Sequence[str], max_pending_per_tier: int):
        self.max_pending = max_pending_per_tier
        self.pending = dict.fromkeys(tiers, 0)
        self.in_flight = 0
        self.draining = False
        for tier in tiers:
            metrics.IN_FLIGHT.labels(tier)

    def check_open(self) -> None:
        if self.draining:
            raise APIError(503, "the appliance is shutting down; retry on another node",
                           code="draining", headers={"Retry-After": str(DRAIN_RETRY_AFTER_S)})

    def admit(self, tier: str, sequences: int = 1) -> None:
        if sequences > self.max_pending:
            raise APIError(400, f"the request asks for {sequences} sequences (prompts x n); "
                           f"a tier takes at most {self.max_pending}", param="n",
                           code="invalid_value")
        if self.pending[tier] + sequences > self.max_pending:
            raise APIError(503, f"The {tier} tier is at capacity; retry shortly",
                           code="overloaded", headers={"Retry-After": str(OVERLOAD_RETRY_AFTER_S)})

    def begin(self, tier: str, sequences: int = 1) -> None:
        self.in_flight += 1
        self.pending[tier] += sequences
        metrics.IN_FLIGHT.labels(tier).inc()

    def end(self, tier: str, sequences: int = 1) -> None:
        self.in_flight -= 1
        self.pending[tier] -= sequences
        metrics.IN_FLIGHT.labels(tier).dec()
