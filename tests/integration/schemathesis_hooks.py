"""Extra schemathesis check: every rejection is an OpenAI-shaped error object."""

from __future__ import annotations

import schemathesis

ERROR_FIELDS = {"message", "type", "param", "code"}


@schemathesis.check
def openai_error_shape(ctx, response, case) -> None:
    if response.status_code < 400 or case.path in ("/docs",):
        return
    try:
        error = response.json()["error"]
    except Exception as exc:
        raise AssertionError(f"{response.status_code} body is not an OpenAI error: "
                             f"{response.text[:200]!r}") from exc
    missing = ERROR_FIELDS - set(error)
    if missing:
        raise AssertionError(f"{response.status_code} error lacks {sorted(missing)}")
