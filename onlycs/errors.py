"""Typed errors of the OnlyCS client. Every API error carries the HTTP status and the
OpenAI-shaped `code` and `message` the appliance sent."""

from __future__ import annotations


class OnlyCSError(Exception):
    """Base class of everything the client raises."""


class APIConnectionError(OnlyCSError):
    """The appliance could not be reached (refused, reset, TLS failure)."""


class APITimeoutError(APIConnectionError):
    """No answer within the client's timeout."""


class APIStatusError(OnlyCSError):
    def __init__(self, status: int, message: str, code: str | None = None,
                 param: str | None = None, retry_after_s: float | None = None):
        super().__init__(f"HTTP {status}" + (f" {code}" if code else "") + f": {message}")
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.retry_after_s = retry_after_s


class BadRequestError(APIStatusError):
    """400: the request itself is wrong (the message names the field)."""


class AuthenticationError(APIStatusError):
    """401: missing, invalid or revoked API key."""


class PermissionDeniedError(APIStatusError):
    """403: the key's scope does not allow this."""


class NotFoundError(APIStatusError):
    """404: unknown model, adapter or path."""


class RateLimitError(APIStatusError):
    """429: this key is over its requests or tokens per minute (after retries)."""


class OverloadedError(APIStatusError):
    """503: the appliance is at capacity or draining (after retries)."""


class InternalServerError(APIStatusError):
    """5xx other than 503."""


_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError, 401: AuthenticationError, 403: PermissionDeniedError,
    404: NotFoundError, 413: BadRequestError, 422: BadRequestError, 429: RateLimitError,
    503: OverloadedError,
}


def error_for(status: int, body: object, retry_after_s: float | None) -> APIStatusError:
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        error = {"message": str(body)[:500] if body else f"HTTP {status}"}
    kind = _BY_STATUS.get(status, InternalServerError if status >= 500 else APIStatusError)
    return kind(status, str(error.get("message", "")), error.get("code"), error.get("param"),
                retry_after_s)
