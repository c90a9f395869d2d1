"""The ingress's side of LoRA hot-swap: validate, load into the LoRA tier (`lora.tier`),
pick a default, and keep the registry every replica follows.

Loads and unloads of one name are serialised; the default changes by replacing one
reference, so each request resolves to exactly one adapter version, and requests
already running finish on the adapter they started with (vLLM keeps their LoRA).

A load reaches one replica of the tier at once (so a bad adapter is refused there and
then); every request to the tier carries the registry (`serving.adapter_sync`), so the
other replicas load it on first use. The registry and the default are written to the
shared state: router replicas on other nodes pick them up within a second, and a
restarted router restores them.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from typing import Any

from kernel.config import AppConfig
from kernel.errors import APIError
from lora.registry import AdapterError, base_model_sha256, check_name, validate
from models.registry import model_dir
from serving import metrics
from serving.adapter_sync import ADAPTERS_FIELD
from serving.shared_state import ADAPTERS, SharedState

logger = logging.getLogger(__name__)


class AdapterControl:
    def __init__(self, config: AppConfig, handle: Any, shared: SharedState | None = None):
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
        self.shared = shared or SharedState(None)
        if self.enabled:
            self.restore(self.shared.load(ADAPTERS))

    # -- the registry every replica follows -------------------------------------------

    def restore(self, state: dict[str, Any] | None) -> None:
        """At start: take the registry this replica (before a restart) or another wrote."""
        if state:
            self._apply(self._validated(state), state)

    async def follow(self, state: dict[str, Any]) -> None:
        """Another router replica changed the registry: take it (checksums off the loop)."""
        self._apply(await asyncio.to_thread(self._validated, state), state)

    def _validated(self, state: dict[str, Any]) -> dict[str, str]:
        """The adapters of a stored registry whose folders still validate; the others are
        left out and logged."""
        loaded = {}
        for name, path in state.get("loaded", {}).items():
            if self.loaded.get(name) == path:
                loaded[name] = path  # checked when it was loaded here
                continue
            try:
                loaded[name] = str(validate(self.root, name, path, base_sha256=self.base_sha256,
                                            max_rank=self.max_rank))
            except AdapterError as exc:
                logger.error("adapter %s (%s) not taken from the shared state: %s", name,
                             path, exc)
        return loaded

    def _apply(self, loaded: dict[str, str], state: dict[str, Any]) -> None:
        default = state.get("default")
        self.loaded = loaded
        self._default_to(default if default in loaded else None)
        self.previous_default = state.get("previous_default")
        logger.info("adapters from the shared state: %s (default %s)",
                    ", ".join(sorted(loaded)) or "none", self.default)

    async def _publish(self) -> None:
        await self.shared.save(ADAPTERS, {"loaded": self.loaded, "default": self.default,
                                          "previous_default": self.previous_default})

    def tier_body(self, body: dict[str, Any]) -> None:
        """What a request to the LoRA tier carries: the registry its replica follows."""
        if self.enabled:
            body[ADAPTERS_FIELD] = dict(self.loaded)

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
                    await self.set_default(name)
                return self.describe()
            result = await self.handle.load_adapter.remote(name, str(path))
            if result["status"] != 200:
                self._event("load", False)
                raise APIError(result["status"], result["body"]["error"]["message"],
                               code="adapter_load_failed")
            self.loaded[name] = str(path)
            self._event("load", True)
        if make_default:
            self._default_to(name)
        await self._publish()
        return self.describe()

    async def unload(self, name: str) -> dict[str, Any]:
        check_name(name)
        async with self._locks[name]:
            if name not in self.loaded:
                raise APIError(404, f"adapter {name!r} is not loaded", param="name",
                               code="adapter_not_found")
            if self.default == name:
                self._default_to(None)
            self.loaded.pop(name)  # new requests stop choosing it before it goes
            await self._publish()
            result = await self.handle.unload_adapter.remote(name)
            self._event("unload", result["status"] == 200)
        return self.describe()

    async def set_default(self, name: str | None) -> dict[str, Any]:
        if name is not None and name not in self.loaded:
            raise APIError(404, f"adapter {name!r} is not loaded", param="name",
                           code="adapter_not_found")
        self._default_to(name)
        self._event("set_default", True)
        await self._publish()
        return self.describe()

    def _default_to(self, name: str | None) -> None:
        if name == self.default:
            return
        if self.default is not None:
            metrics.ADAPTER_DEFAULT.labels(self.default).set(0)
        self.previous_default, self.default = self.default, name
        if name is not None:
            metrics.ADAPTER_DEFAULT.labels(name).set(1)

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
