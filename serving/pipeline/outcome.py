"""What the chain hands back to its caller (the HTTP routes or a chat channel): typed
values, never an HTTP response to be parsed back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

ROUTE_HEADER = "x-onlycs-route"
SESSION_RESPONSE_HEADER = "x-onlycs-session"
NODE_HEADER = "x-onlycs-node"


@dataclass(frozen=True)
class Route:
    """Which tier answered and why; `tier` None means the appliance answered itself."""

    tier: str | None
    rule: str
    adapter: str | None = None
    session_id: str | None = None
    mode: str | None = None  # the knowledge base's answer mode; None: not consulted
    sources: tuple[str, ...] = ()  # kb:<entry>@v<version> the answer came from
    node: str | None = None  # the host whose replica answered (a cluster has several)

    def header(self) -> str:
        route = f"tier={self.tier or 'none'}; rule={self.rule}"
        if self.adapter:
            route += f"; adapter={self.adapter}"
        if self.mode:
            route += f"; mode={self.mode}"
        if self.sources:
            route += f"; sources={','.join(self.sources)}"
        return route

    def headers(self) -> dict[str, str]:
        headers = {ROUTE_HEADER: self.header()}
        if self.session_id is not None:
            headers[SESSION_RESPONSE_HEADER] = self.session_id
        if self.node is not None:
            # Apart from the route: `onlycs router explain` says the route, not the node.
            headers[NODE_HEADER] = self.node
        return headers


@dataclass(frozen=True)
class Reply:
    """A whole answer: an OpenAI response body (or a tier's error body) and its status."""

    status: int
    body: dict[str, Any]
    route: Route

    def text(self) -> str:
        """Choice 0's text, chat or completion."""
        choices = self.body.get("choices") or [{}]
        choice = choices[0]
        return (choice.get("message") or {}).get("content") or choice.get("text") or ""


@dataclass(frozen=True)
class StreamReply:
    """An answer as SSE events, already filtered; the turn is stored before `[DONE]`.
    `ready`: the appliance wrote the answer itself, so every event but `[DONE]` is there at
    once and nothing is generated for a client that leaves."""

    events: AsyncIterator[str]
    route: Route
    ready: bool = False


Outcome = Reply | StreamReply
