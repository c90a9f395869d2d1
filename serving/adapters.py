"""The ingress's side of LoRA hot-swap: validate, load into the LoRA tier (`lora.tier`),
pick a default.

Loads and unloads of one name are serialised; the default changes by replacing one
reference, so each request resolves to exactly one adapter version, and requests
already running finish on the adapter they started with (vLLM keeps their LoRA).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

from kernel.config import AppConfig
from kernel.errors import APIError
from lora.registry import AdapterError, base_model_sha256, check_name, validate
from models.registry import model_dir
from serving import metrics


class AdapterControl:
    def __init__(self, config: AppConfig, handle: Any):
        self.tier = config.lora.tier
        tier = config.tiers[self.tier]
        self.root = config.lora.root
        self.max_rank = tier.max_lora_rank
        self.enabled = tier.enable_lora
        self.base_sha256 = base_model_sha256(model_dir(config, tier))
        self.handle = handle
        self.loaded: dict[str, str] = {}
        self.default: str | None = None
        self.previous_default: str | None = None
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    def _event(self, event: str, ok: bool) -> None:
        metrics.ADAPTER_EVENTS.labels(event, "ok" if ok else "error").inc()

    async def load(self, name: str, folder: str, make_default: bool) -> dict[str, Any]:
        if not self.enabled:
            raise APIError(400, f"LoRA is disabled on the {self.tier} tier "
                           f"(tiers.{self.tier}.enable_lora)")
        try:
            # Checksumming the adapter's files reads megabytes: off the event loop.
            path = await asyncio.to_thread(validate, self.root, name, folder,
                                           base_sha256=self.base_sha256, max_rank=self.max_rank)
        except AdapterError as exc:
            self._event("load", False)
            raise APIError(400, str(exc), param=exc.param, code="invalid_adapter") from None
        async with self._locks[name]:
            if name in self.loaded:
                if self.loaded[name] != str(path):
                    self._event("load", False)
                    raise APIError(409, f"adapter {name!r} is already loaded from "
                                   f"{self.loaded[name]}; load the new version under a new "
                                   "name (the old one stays for rollback)", param="name",
                                   code="adapter_exists")
                if make_default:
                    self.set_default(name)
                return self.describe()
            result = await self.handle.load_adapter.remote(name, str(path))
            if result["status"] != 200:
                self._event("load", False)
                raise APIError(result["status"], result["body"]["error"]["message"],
                               code="adapter_load_failed")
            self.loaded[name] = str(path)
            self._event("load", True)
        if make_default:
            self.set_default(name)
        return self.describe()

    async def unload(self, name: str) -> dict[str, Any]:
        check_name(name)
        async with self._locks[name]:
            if name not in self.loaded:
                raise APIError(404, f"adapter {name!r} is not loaded", param="name",
                               code="adapter_not_found")
            if self.default == name:
                self.set_default(None)
            self.loaded.pop(name)  # new requests stop choosing it before it goes
            result = await self.handle.unload_adapter.remote(name)
            self._event("unload", result["status"] == 200)
        return self.describe()

    def set_default(self, name: str | None) -> dict[str, Any]:
        if name is not None and name not in self.loaded:
            raise APIError(404, f"adapter {name!r} is not loaded", param="name",
                           code="adapter_not_found")
        if self.default is not None:
            metrics.ADAPTER_DEFAULT.labels(self.default).set(0)
        self.previous_default, self.default = self.default, name
        if name is not None:
            metrics.ADAPTER_DEFAULT.labels(name).set(1)
        self._event("set_default", True)
        return self.describe()

    def resolve(self, tier: str, adapter: str | None) -> str | None:
        """The adapter a request to `tier` uses: the one it named, or the default."""
        if tier != self.tier:
            return None
        if adapter is not None and adapter not in self.loaded:
            raise APIError(404, f"adapter {adapter!r} is not loaded; loaded: "
                           f"{', '.join(sorted(self.loaded)) or 'none'}", param="model",
                           code="model_not_found")
        chosen = adapter or self.default
        if chosen is not None:
            metrics.ADAPTER_REQUESTS.labels(chosen).inc()
        return chosen

    def describe(self) -> dict[str, Any]:
        return {"adapters": [{"name": n, "path": p} for n, p in sorted(self.loaded.items())],
                "default": self.default, "previous_default": self.previous_default}
