"""Admin calls (an admin-scoped key): LoRA adapters without a restart.

    from onlycs.admin import AdminClient
    with AdminClient("https://cs.example.com:8443", api_key="ocs-...", verify="ca.pem") as a:
        a.load_adapter("kb-v2", "kb-v2", default=True)
"""

from __future__ import annotations

from typing import Any

import httpx

from onlycs import _wire
from onlycs.errors import APIConnectionError, APITimeoutError

ADAPTERS_PATH = "/admin/adapters"


class AdminClient:
    def __init__(self, base_url: str, api_key: str | None = None, *,
                 verify: bool | str = True, timeout_s: float = 300.0):
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(base_url=base_url.rstrip("/"), headers=headers,
                                 timeout=timeout_s, verify=_wire.tls_verify(verify))

    def adapters(self) -> dict[str, Any]:
        return self._call("GET", ADAPTERS_PATH)

    def load_adapter(self, name: str, path: str, *, default: bool = False) -> dict[str, Any]:
        return self._call("POST", ADAPTERS_PATH,
                          json={"name": name, "path": path, "default": default})

    def unload_adapter(self, name: str) -> dict[str, Any]:
        return self._call("DELETE", f"{ADAPTERS_PATH}/{name}")

    def set_default_adapter(self, name: str | None) -> dict[str, Any]:
        return self._call("PUT", f"{ADAPTERS_PATH}/default", json={"name": name})

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise APITimeoutError(str(exc) or "timed out") from None
        except httpx.TransportError as exc:
            raise APIConnectionError(f"{type(exc).__name__}: {exc}") from None
        _wire.raise_for(response.status_code, response.headers, response.content)
        return response.json()

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
