"""The asyncio twin of `onlycs.Client`, for bots and game servers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import httpx

from onlycs import _wire
from onlycs._wire import Reply, Settings
from onlycs.errors import APIConnectionError, APITimeoutError

logger = logging.getLogger("onlycs")


class AsyncClient:
    def __init__(self, base_url: str, api_key: str | None = None, *, model: str = "auto",
                 max_tokens: int | None = None, timeout_s: float = 120.0,
                 max_retries: int = 3, max_retry_wait_s: float = 30.0,
                 verify: bool | str = True, _http: httpx.AsyncClient | None = None,
                 _settings: Settings | None = None):
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = _http or httpx.AsyncClient(base_url=base_url.rstrip("/"),
                                                headers=headers, timeout=timeout_s,
                                                verify=_wire.tls_verify(verify))
        self._settings = _settings or Settings(model=model, max_tokens=max_tokens,
                                               max_retries=max_retries,
                                               max_retry_wait_s=max_retry_wait_s)

    def with_personality(self, name_or_prompt: str) -> AsyncClient:
        return AsyncClient("", _http=self._http,
                           _settings=_wire.personality(self._settings, name_or_prompt))

    def with_model(self, model: str) -> AsyncClient:
        return AsyncClient("", _http=self._http,
                           _settings=replace(self._settings, model=model))

    async def send(self, user_id: str, text: str) -> str:
        return (await self.chat(user_id, text)).text

    async def chat(self, user_id: str, text: str) -> Reply:
        headers, body = _wire.chat_request(self._settings, user_id, text, stream=False)
        response = await self._post(headers, body)
        try:
            _wire.raise_for(response.status_code, response.headers, await response.aread())
            return _wire.reply_of(response.headers, response.json())
        finally:
            await response.aclose()

    async def stream(self, user_id: str, text: str) -> AsyncIterator[str]:
        headers, body = _wire.chat_request(self._settings, user_id, text, stream=True)
        response = await self._post(headers, body)
        try:
            if response.status_code >= 400:
                _wire.raise_for(response.status_code, response.headers,
                                await response.aread())
            async for line in response.aiter_lines():
                piece = _wire.sse_text(line)
                if piece:
                    yield piece
        except httpx.TimeoutException as exc:
            raise APITimeoutError(str(exc) or "timed out") from None
        except httpx.TransportError as exc:
            raise APIConnectionError(f"{type(exc).__name__}: {exc}") from None
        finally:
            await response.aclose()

    async def _post(self, headers: dict[str, str], body: dict[str, Any]) -> httpx.Response:
        attempt = 0
        while True:
            try:
                request = self._http.build_request("POST", _wire.CHAT_PATH, headers=headers,
                                                   json=body)
                response = await self._http.send(request, stream=True)
            except httpx.TimeoutException as exc:
                raise APITimeoutError(str(exc) or "timed out") from None
            except httpx.TransportError as exc:
                raise APIConnectionError(f"{type(exc).__name__}: {exc}") from None
            wait = _wire.retry_wait(self._settings, attempt, response.status_code,
                                    response.headers)
            if wait is None:
                return response
            await response.aclose()
            logger.info("HTTP %d, retrying in %.1f s", response.status_code, wait)
            await asyncio.sleep(wait)
            attempt += 1

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()
