"""Who may call what: API-key authentication, admin scope, per-key rate limits.

Pure Python (no engine import); lives in the router replica, which re-reads the
key file when it changes, so `onlycs keys revoke` applies without a restart.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from kernel.config import AppConfig
from kernel.errors import APIError
from kernel.keys import KeyRecord, KeyStore
from kernel.ratelimit import RateLimiter

ANONYMOUS = "anonymous"


@dataclass(frozen=True)
class Caller:
    key_id: str
    scope: str
    rpm: int | None = None
    tpm: int | None = None
    persona: str | None = None
    owner: str | None = None  # whose sessions these are; None: the key's own

    @property
    def session_owner(self) -> str:
        return self.owner or self.key_id


def _bearer(headers: Mapping[str, str]) -> str | None:
    value = headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return headers.get("x-api-key") or None


class AccessControl:
    def __init__(self, config: AppConfig):
        self.required = config.auth_required
        self.metrics_require_key = config.security.metrics_require_key
        self.keys = KeyStore(config.security.keys_file)
        self.limits = RateLimiter(config.security.default_rpm, config.security.default_tpm)

    def caller(self, headers: Mapping[str, str], *, admin: bool = False) -> Caller:
        """The authenticated caller, or a 401/403 APIError. Admin endpoints need an admin
        key in every mode: with keys off on loopback every local user is a client, not an
        admin (adapter loads, rule reloads, the running config)."""
        if not self.required and not admin:
            return Caller(ANONYMOUS, "client")
        presented = _bearer(headers)
        if presented is None:
            raise APIError(401, "Missing API key: send `Authorization: Bearer <key>`",
                           code="missing_api_key")
        record: KeyRecord | None = self.keys.verify(presented)
        if record is None:
            raise APIError(401, "Invalid or revoked API key", code="invalid_api_key")
        if admin and record.scope != "admin":
            raise APIError(403, "This endpoint needs an admin-scoped API key",
                           code="insufficient_scope")
        return Caller(record.id, record.scope, record.rpm, record.tpm, record.persona)

    def charge(self, caller: Caller, tokens: int) -> None:
        """Spend one request and `tokens` of the caller's per-minute budget, or raise 429."""
        if caller.key_id == ANONYMOUS:
            return
        wait = self.limits.admit(caller.key_id, tokens, rpm=caller.rpm, tpm=caller.tpm)
        if wait == math.inf:
            raise APIError(400, "This request alone exceeds the key's tokens-per-minute "
                           "limit; lower max_tokens", param="max_tokens",
                           code="request_too_large")
        if wait > 0:
            raise APIError(429, "Rate limit exceeded for this API key",
                           code="rate_limit_exceeded",
                           headers={"Retry-After": str(max(1, math.ceil(wait)))})
