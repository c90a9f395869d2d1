"""The OnlyCS client: sessions and personas over the appliance's OpenAI-compatible API.

    from onlycs import Client
    cs = Client("https://cs.example.com:8443", api_key="ocs-...").with_personality("friendly")
    print(cs.send("customer-42", "Where is my order?"))

Only `httpx` is needed. For everything else the OpenAI API offers, use the `openai`
package against the same endpoint.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx

from onlycs import _wire
from onlycs._wire import Reply, Settings
from onlycs.errors import APIConnectionError, APITimeoutError

logger = logging.getLogger("onlycs")


class Client:
    def __init__(self, base_url: str, api_key: str | None = None, *, model: str = "auto",
                 max_tokens: int | None = None, timeout_s: float = 120.0,
                 max_retries: int = 3, max_retry_wait_s: float = 30.0,
                 verify: bool | str = True, _http: httpx.Client | None = None,
                 _settings: Settings | None = None):
        """`verify`: True, False, or the path of a CA file (e.g. the appliance's own CA)."""
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = _http or httpx.Client(base_url=base_url.rstrip("/"), headers=headers,
                                           timeout=timeout_s,
                                           verify=_wire.tls_verify(verify))
        self._settings = _settings or Settings(model=model, max_tokens=max_tokens,
                                               max_retries=max_retries,
                                               max_retry_wait_s=max_retry_wait_s)

    def with_personality(self, name_or_prompt: str) -> Client:
        """A client that speaks as a configured persona (`"game_npc"`) or with your own
        system prompt; sessions and the connection are shared."""
        return Client("", _http=self._http,
                      _settings=_wire.personality(self._settings, name_or_prompt))

    def with_model(self, model: str) -> Client:
        """`auto` (the router picks), `small`, `large` or `small:<adapter>`."""
        return Client("", _http=self._http, _settings=replace(self._settings, model=model))

    def send(self, user_id: str, text: str) -> str:
        """The assistant's answer to `text` in `user_id`'s conversation."""
        return self.chat(user_id, text).text

    def chat(self, user_id: str, text: str) -> Reply:
        """Like `send`, with the route the appliance chose and why the answer ended."""
        headers, body = _wire.chat_request(self._settings, user_id, text, stream=False)
        response = self._post(headers, body, stream=False)
        try:
            _wire.raise_for(response.status_code, response.headers, response.read())
            return _wire.reply_of(response.headers, response.json())
        finally:
            response.close()

    def stream(self, user_id: str, text: str) -> Iterator[str]:
        """The answer as it is generated, piece by piece."""
        headers, body = _wire.chat_request(self._settings, user_id, text, stream=True)
        response = self._post(headers, body, stream=True)
        try:
            if response.status_code >= 400:
                _wire.raise_for(response.status_code, response.headers, response.read())
            for line in response.iter_lines():
                piece = _wire.sse_text(line)
                if piece:
                    yield piece
        except httpx.TimeoutException as exc:
            raise APITimeoutError(str(exc) or "timed out") from None
        except httpx.TransportError as exc:
            raise APIConnectionError(f"{type(exc).__name__}: {exc}") from None
        finally:
            response.close()

    def _post(self, headers: dict[str, str], body: dict[str, Any],
              stream: bool) -> httpx.Response:
        """Send, retrying refusals (429, 503) as the appliance's Retry-After says; those
        are refused before any work, so a retry never doubles a conversation turn."""
        attempt = 0
        while True:
            try:
                request = self._http.build_request("POST", _wire.CHAT_PATH, headers=headers,
                                                   json=body)
                response = self._http.send(request, stream=True)
            except httpx.TimeoutException as exc:
                raise APITimeoutError(str(exc) or "timed out") from None
            except httpx.TransportError as exc:
                raise APIConnectionError(f"{type(exc).__name__}: {exc}") from None
            wait = _wire.retry_wait(self._settings, attempt, response.status_code,
                                    response.headers)
            if wait is None:
                return response
            response.close()
            logger.info("HTTP %d, retrying in %.1f s", response.status_code, wait)
            time.sleep(wait)
            attempt += 1

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
