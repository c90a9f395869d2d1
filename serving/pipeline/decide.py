"""Decide: which configured tier answers a request, and why (model name, sensitive words,
the rule tree). Pure Python and numpy: importing it pulls in neither vllm nor torch."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from kernel.config import AppConfig
from kernel.errors import APIError
from serving import metrics
from serving.protocol import ChatRequest, CompletionRequest, content_text
from serving.router.engine import Decision, RoutingEngine
from serving.router.sensitive import SensitiveMatcher, mask, read_terms, strongest

AUTO = "auto"


@dataclass(frozen=True)
class RouteDecision:
    tier: str | None  # None: blocked, answered by the appliance
    rule: str
    reason: str
    masked_text: str | None = None
    adapter: str | None = None  # named in the model ("small:kb-v2"), else the default
    # Other texts the model sees, masked: (message index, or prompt index, masked text).
    rewrites: tuple[tuple[int, str], ...] = ()
    intent: str | None = None  # the fast classifier's, for the knowledge base's mode choice
    intent_sure: bool = True


def other_texts(req: ChatRequest | CompletionRequest) -> list[tuple[int, str]]:
    """What reaches the model beside the text the rule tree reads: every user, system and
    developer message before the last user message; every prompt of a list."""
    if isinstance(req, CompletionRequest):
        prompts = req.prompt if isinstance(req.prompt, list) else []
        return [(i, p) for i, p in enumerate(prompts) if isinstance(p, str)]
    users = [i for i, m in enumerate(req.messages) if m.role == "user"]
    last = users[-1] if users else None
    return [(i, content_text(m.content)) for i, m in enumerate(req.messages)
            if m.role in ("user", "system", "developer") and i != last]


def build_engine(config: AppConfig) -> RoutingEngine:
    routing = config.routing
    lists = {w.name: (w.action, read_terms(w.file)) for w in routing.sensitive_lists}
    return RoutingEngine(SensitiveMatcher(lists), routing.rules_file,
                         tiers=config.tier_names,
                         cache_sessions=routing.context_cache_sessions,
                         embed_below=routing.embed_below)


def model_names(tiers: Sequence[str]) -> tuple[str, ...]:
    return (AUTO, *tiers)


class TierDecider:
    def __init__(self, config: AppConfig):
        self.tiers = config.tier_names
        self.lora_tier = config.lora.tier
        self.engine = build_engine(config)

    def decide(self, req: ChatRequest | CompletionRequest,
               session_id: str | None) -> RouteDecision:
        history = req.user_texts()[:-1] if isinstance(req, ChatRequest) else []
        decision = self.route(req.model or AUTO, req.last_user_text(), session_id=session_id,
                              history=history)
        if decision.tier is None:
            return decision
        rewrites = []
        for index, text in other_texts(req):
            hits = self.engine.matcher.find(text)
            for hit in hits:
                metrics.SENSITIVE_HITS.labels(hit.list_name, hit.action).inc()
            if strongest(hits) == "block":
                blocked = next(h for h in hits if h.action == "block")
                return RouteDecision(None, f"blocked.{blocked.list_name}",
                                     "blocked by a sensitive-word list (an earlier message)")
            if any(h.action == "mask" for h in hits):
                rewrites.append((index, mask(text, hits)))
        return replace(decision, rewrites=tuple(rewrites)) if rewrites else decision

    def route(self, model: str, text: str, *, session_id: str | None = None,
              history: list[str] | None = None) -> RouteDecision:
        model, _, adapter = model.partition(":")
        if model not in model_names(self.tiers) or (adapter and model != self.lora_tier):
            raise APIError(404, f"The model '{model}' does not exist; use one of "
                           f"{', '.join(model_names(self.tiers))} or "
                           f"{self.lora_tier}:<adapter>", param="model",
                           code="model_not_found")
        decision: Decision = self.engine.decide(text, session_id=session_id, history=history)
        metrics.CONTEXT_CACHE.labels("hit" if decision.cache_hit else "miss").inc()
        for hit in decision.hits:
            metrics.SENSITIVE_HITS.labels(hit.list_name, hit.action).inc()
        masked = mask(text, decision.hits) if any(h.action == "mask" for h in
                                                  decision.hits) else None
        if decision.tier is None:
            return RouteDecision(None, decision.rule, "blocked by a sensitive-word list")
        if model != AUTO:
            return RouteDecision(model, "pinned", f"client asked for model {model!r}", masked,
                                 adapter or None, intent=decision.intent,
                                 intent_sure=decision.intent_sure)
        reason = " -> ".join(f"{s.feature}={s.value:.3g} {'>' if s.went == 'then' else '<='} "
                             f"{s.threshold:g}" for s in decision.path) or "default"
        return RouteDecision(decision.tier, decision.rule, reason, masked,
                             intent=decision.intent, intent_sure=decision.intent_sure)
