"""Which tier answers a request. A placeholder rule until the decision tree lands.

Pure Python: importing it pulls in neither vllm nor torch.
"""

from __future__ import annotations

from dataclasses import dataclass

TIERS = ("small", "large")


@dataclass(frozen=True)
class RouteDecision:
    tier: str
    rule: str
    reason: str

    def header(self) -> str:
        return f"tier={self.tier}; rule={self.rule}"


def pinned(tier: str) -> RouteDecision:
    return RouteDecision(tier, "pinned", f"client asked for model {tier!r}")


def choose_tier(last_user_text: str, *, long_message_chars: int) -> RouteDecision:
    if len(last_user_text) > long_message_chars:
        return RouteDecision("large", "placeholder.long_message",
                             f"message longer than {long_message_chars} characters")
    return RouteDecision("small", "placeholder.default", "short message")
