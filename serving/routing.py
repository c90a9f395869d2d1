"""Which tier answers a request, and why: model names, sensitive words, the rule tree.

Pure Python and numpy: importing it pulls in neither vllm nor torch.
"""

from __future__ import annotations

from dataclasses import dataclass

from appliance.config import AppConfig
from appliance.errors import APIError
from serving import metrics
from serving.router.engine import Decision, RoutingEngine
from serving.router.sensitive import SensitiveMatcher, mask, read_terms

TIERS = ("small", "large")


@dataclass(frozen=True)
class RouteDecision:
    tier: str | None  # None: blocked, answered by the appliance
    rule: str
    reason: str
    masked_text: str | None = None
    adapter: str | None = None  # named in the model ("small:kb-v2"), else the default

    def header(self) -> str:
        route = f"tier={self.tier or 'none'}; rule={self.rule}"
        return f"{route}; adapter={self.adapter}" if self.adapter else route


def build_engine(config: AppConfig) -> RoutingEngine:
    routing = config.routing
    lists = {w.name: (w.action, read_terms(w.file)) for w in routing.sensitive_lists}
    return RoutingEngine(SensitiveMatcher(lists), routing.rules_file,
                         cache_sessions=routing.context_cache_sessions,
                         embed_below=routing.embed_below)


class Routing:
    def __init__(self, config: AppConfig):
        self.engine = build_engine(config)

    def route(self, model: str, text: str, *, session_id: str | None = None,
              history: list[str] | None = None) -> RouteDecision:
        model, _, adapter = model.partition(":")
        if model not in ("auto", *TIERS) or (adapter and model != "small"):
            raise APIError(404, f"The model '{model}' does not exist; use one of "
                           f"{', '.join(('auto', *TIERS))} or small:<adapter>", param="model",
                           code="model_not_found")
        decision: Decision = self.engine.decide(text, session_id=session_id, history=history)
        metrics.CONTEXT_CACHE.labels("hit" if decision.cache_hit else "miss").inc()
        for hit in decision.hits:
            metrics.SENSITIVE_HITS.labels(hit.list_name, hit.action).inc()
        masked = mask(text, decision.hits) if any(h.action == "mask" for h in
                                                  decision.hits) else None
        if decision.tier is None:
            return RouteDecision(None, decision.rule, "blocked by a sensitive-word list")
        if model != "auto":
            return RouteDecision(model, "pinned", f"client asked for model {model!r}", masked,
                                 adapter or None)
        reason = " -> ".join(f"{s.feature}={s.value:.3g} {'>' if s.went == 'then' else '<='} "
                             f"{s.threshold:g}" for s in decision.path) or "default"
        return RouteDecision(decision.tier, decision.rule, reason, masked)
