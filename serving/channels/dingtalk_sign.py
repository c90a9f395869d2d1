"""DingTalk robot request signature: base64 HMAC-SHA256 of "timestamp\\nAppSecret",
keyed with the AppSecret; the timestamp is in milliseconds."""

from __future__ import annotations

import base64
import hashlib
import hmac


def sign(timestamp_ms: str, app_secret: str) -> str:
    digest = hmac.new(app_secret.encode(), f"{timestamp_ms}\n{app_secret}".encode(),
                      hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def verify(given: str, timestamp_ms: str, app_secret: str) -> bool:
    return hmac.compare_digest(sign(timestamp_ms, app_secret), given)
