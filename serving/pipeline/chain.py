"""The request path, top to bottom. A newcomer reads this file to know what happens to a
request; each step is one stage object (this folder) with its own unit tests.

    parse and cap -> authenticate and rate -> session -> decide -> ground -> admit
    -> dispatch -> relay and filter (and the fact guard) -> store

Ground asks the knowledge base: a `kb`, `suggest` or `abstain` answer is the appliance's own
and no engine sees the request; a `grounded` one reaches the tier with the entries in its
prompt and is checked whole before it is sent; an `open` one streams, its numbers checked
as they come.

Authentication happens before the body is parsed (an HTTP dependency, so a caller without a
key learns nothing from 400s); the chain charges the caller's budget once the request is
admitted. Channels call the same `chat` with their own caller.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from kernel.config import AppConfig
from kernel.store import open_store
from knowledge.service import Answer
from serving import metrics
from serving.access import AccessControl, Caller
from serving.adapters import AdapterControl
from serving.context import persona_name
from serving.pipeline.admission import Admission
from serving.pipeline.caps import (
    Request,
    RequestCaps,
    charged_tokens,
    engine_body,
    estimated_prompt_tokens,
    text_size,
)
from serving.pipeline.decide import RouteDecision, TierDecider
from serving.pipeline.dispatch import APP_NAME, TierDispatcher, running_replicas
from serving.pipeline.ground import (
    KB_MODEL,
    KNOWLEDGE_HEADER,
    KnowledgeStage,
    answered_by_appliance,
    knowledge_route,
)
from serving.pipeline.outcome import Outcome, Reply, Route, StreamReply
from serving.pipeline.relay import relay, stored_stream
from serving.pipeline.session import PendingTurn, SessionStage
from serving.protocol import ChatRequest, CompletionRequest
from serving.refusal import REFUSAL, refusal_body, refusal_stream
from serving.reply_tokens import ReplyTokens
from serving.router.rules import RulesError, RuleTree
from serving.safety import FactCheck, OutputFilter, mask_response
from serving.shared_state import ADAPTERS, ROUTER_RULES, SharedState

# Requests with more text than this are decided off the event loop (most are far smaller,
# and a thread hop costs more than deciding them inline).
INLINE_DECIDE_CHARS = 16_384


logger = logging.getLogger(__name__)

class RequestPipeline:
    def __init__(self, config: AppConfig, handles: Mapping[str, Any],
                 knowledge: KnowledgeStage | None = None):
        self.config = config
        # Each engine's handle, under the name of every tier it serves.
        handles = {name: handles[config.engine_tier(name)] for name in config.tier_names}
        self.caps = RequestCaps(config.limits)
        self.access = AccessControl(config)
        store = open_store(config.store) if config.store.enabled else None
        self.sessions = SessionStage(config.sessions, store)
        self.shared = SharedState(store)
        self.decider = TierDecider(config)
        self._take_rules(self.shared.load(ROUTER_RULES))
        limits = config.limits
        self.admission = Admission(config.tier_names, limits.max_pending_per_tier,
                                   wait_s=limits.admission_wait_s,
                                   max_waiting_per_tier=limits.max_waiting_per_tier)
        self.adapters = AdapterControl(config, handles[config.lora.tier], self.shared)
        self._follower: asyncio.Task | None = None
        self.dispatcher = TierDispatcher(handles)
        self.output_filter = OutputFilter(self.decider.engine.matcher)
        self.knowledge = knowledge if knowledge is not None else KnowledgeStage(config)
        self.reply_tokens = ReplyTokens.for_config(config)

    # -- state shared with the other router replicas ---------------------------------

    async def reload_rules(self, text: str) -> RuleTree:
        """Validate, swap in, and hand to every replica (and the next start); a bad file
        changes nothing (RulesError)."""
        tree = self.decider.engine.reload_rules(text)
        await self.shared.save(ROUTER_RULES, text)
        return tree

    def _take_rules(self, text: str | None) -> None:
        if text is None:
            return
        try:
            self.decider.engine.reload_rules(text)
        except RulesError as exc:  # e.g. a rule file naming a feature this version lacks
            logger.error("router rules from the shared state refused, the shipped ones "
                         "stay: %s", exc)

    def follow_shared_state(self) -> None:
        """Start (once, from the event loop) looking for what other replicas changed."""
        if self._follower is None and self.shared.persisted:
            self._follower = asyncio.get_running_loop().create_task(self._follow())

    async def _follow(self) -> None:
        while True:
            await asyncio.sleep(self.shared.check_every_s)
            try:
                changes = await self.shared.changed()
                if ADAPTERS in changes:
                    await self.adapters.follow(changes[ADAPTERS])
                if ROUTER_RULES in changes:
                    self._take_rules(changes[ROUTER_RULES])
            except Exception:
                logger.exception("shared state: applying a change failed; looking again")

    async def chat(self, req: ChatRequest, headers: Mapping[str, str],
                   caller: Caller) -> Outcome:
        self.follow_shared_state()
        max_tokens = self.caps.max_tokens(req)
        self.admission.check_open()
        session = await self.sessions.open(req, headers, caller.session_owner, caller.persona)
        return await self._answer("chat", session.request, max_tokens, caller, session.turn,
                                  persona_name(headers, req, caller.persona),
                                  headers.get(KNOWLEDGE_HEADER))

    async def completion(self, req: CompletionRequest, caller: Caller) -> Outcome:
        self.follow_shared_state()
        max_tokens = self.caps.max_tokens(req)
        self.admission.check_open()
        return await self._answer("completions", req, max_tokens, caller, None)

    async def _answer(self, method: str, req: Request, max_tokens: int, caller: Caller,
                      turn: PendingTurn | None, persona: str | None = None,
                      knowledge: str | None = None) -> Outcome:
        session_id = turn.session_id if turn else None
        started = time.perf_counter()
        if text_size(req) > INLINE_DECIDE_CHARS:
            # A scan of a megabyte of messages takes a tenth of a second or more: in a
            # thread, so the event loop goes on answering other connections meanwhile.
            decision = await asyncio.to_thread(self.decider.decide, req, session_id)
        else:
            decision = self.decider.decide(req, session_id)
        metrics.ROUTER_DECISION.observe(time.perf_counter() - started)
        if decision.tier is None:  # refused, still stored: charged what it read
            self.access.charge(caller, estimated_prompt_tokens(req))
            return await self._refuse(req, decision, turn)
        # The knowledge base speaks for `auto`, the appliance; a pinned model is that tier
        # unless the request asks for grounding (`lora eval` compares an adapter both ways).
        wanted = knowledge == "on" or (knowledge != "off" and decision.rule != "pinned")
        consult = isinstance(req, ChatRequest) and wanted
        answer = await self.knowledge.consult(req, decision) if consult else None
        if answered_by_appliance(answer):
            assert answer is not None
            self.access.charge(caller, estimated_prompt_tokens(req))
            return await self._answer_itself(req, decision, answer, turn, persona)
        tier = decision.tier
        await self.admission.acquire(tier, req.sequences, session_id)
        # From here the tier's places are held: `_grounded` and `_dispatch` release them.
        try:
            self.access.charge(caller, charged_tokens(req, max_tokens))
            metrics.ROUTING_DECISIONS.labels(tier, decision.rule).inc()
            decision = replace(decision, adapter=self.adapters.resolve(tier, decision.adapter))
            body = engine_body(req, decision.adapter or tier, max_tokens,
                               masked_text=decision.masked_text, session_id=session_id,
                               rewrites=decision.rewrites)
            if tier == self.adapters.tier:
                self.adapters.tier_body(body)
            route = knowledge_route(tier, decision.rule, answer, adapter=decision.adapter,
                                    session_id=turn.client_id if turn else None)
            grounded = answer is not None and answer.mode == "grounded"
            if grounded:
                self.knowledge.ground_body(body, answer)
        except BaseException:
            self.admission.release(tier, req.sequences)
            raise
        if grounded:
            assert answer is not None
            return await self._grounded(req, body, route, turn, answer)
        facts = (self.knowledge.fact_check(req, answer)
                 if isinstance(req, ChatRequest) and answer is not None else None)
        return await self._dispatch(method, body, route, turn, req.sequences, facts)

    async def _answer_itself(self, req: Request, decision: RouteDecision, answer: Answer,
                             turn: PendingTurn | None, persona: str | None) -> Outcome:
        """kb, suggest and abstain: the appliance answers; no engine is called."""
        text = self.knowledge.reply_text(answer, persona)
        route = knowledge_route(None, decision.rule, answer,
                                session_id=turn.client_id if turn else None)
        metrics.ROUTING_DECISIONS.labels("none", route.rule).inc()
        return await self._own_reply(req, text, route, turn, model=KB_MODEL,
                                     finish_reason="stop")

    async def _own_reply(self, req: Request, text: str, route: Route,
                         turn: PendingTurn | None, **shape: str) -> Outcome:
        """A reply the appliance wrote itself (kb, abstain, refusal), stored as a turn: a
        stream goes out at once and ends once the store has it; a body waits for the store."""
        usage = await self.reply_tokens.usage(req, text)
        if req.stream:
            events = refusal_stream(req, text, usage=usage, **shape)
            if turn is not None:
                events = stored_stream(events, self.sessions.save(turn, text))
            return StreamReply(events, route, ready=True)
        if turn is not None:
            await self.sessions.save(turn, text)
        return Reply(200, refusal_body(req, text, usage=usage, **shape), route)

    async def _grounded(self, req: Request, body: dict[str, Any], route: Route,
                        turn: PendingTurn | None, answer: Answer) -> Outcome:
        """The tier's whole answer is checked before a byte leaves: a stream is generated
        in full, guarded, then sent as SSE."""
        body["stream"] = False
        body.pop("stream_options", None)
        tier = route.tier
        assert tier is not None
        try:
            opened = await self.dispatcher.open(tier, "chat", body)
        finally:
            self.admission.release(tier, req.sequences)
        result = opened.result
        assert result is not None
        route = replace(route, node=opened.node)
        if result["status"] != 200:
            return Reply(result["status"], result["body"], route)
        question = req.last_user_text()
        for choice in result["body"].get("choices", []):
            message = choice.get("message") or {}
            text, replaced = self.knowledge.guard(message.get("content") or "", question,
                                                  answer)
            if replaced is not None:
                choice["finish_reason"] = "stop"
            # The shop's own phone number and e-mail, checked against the entries, stay.
            message["content"] = self.knowledge.mask_except_sources(
                self.output_filter, text, answer)
        reply = Reply(200, result["body"], route)
        if turn is not None:
            await self.sessions.save(turn, reply.text())
        if req.stream:
            return StreamReply(refusal_stream(req, reply.text(), model=result["body"].get(
                "model", route.tier), finish_reason="stop", usage=result["body"].get("usage")),
                route, ready=True)
        return reply

    async def _dispatch(self, method: str, body: dict[str, Any], route: Route,
                        turn: PendingTurn | None, sequences: int,
                        facts: FactCheck | None = None) -> Outcome:
        tier = route.tier
        assert tier is not None
        options = body.get("stream_options") or {}
        usage_wanted = bool(options.get("include_usage"))
        # A stream the fact guard may stop early: the engine counts tokens on every event,
        # so a stopped one can end at once with its usage (sent once, as the client asked).
        usage_held = (usage_wanted and facts is not None
                      and not options.get("continuous_usage_stats"))
        if usage_held:
            body["stream_options"] = {**options, "continuous_usage_stats": True}
        streaming = False
        try:
            opened = await self.dispatcher.open(tier, method, body)
            route = replace(route, node=opened.node)
            if opened.result is not None:
                result = opened.result
                if result["status"] == 200:
                    mask_response(self.output_filter, result["body"], facts)
                reply = Reply(result["status"], result["body"], route)
                if turn is not None and reply.status == 200:
                    await self.sessions.save(turn, reply.text())
                return reply
            save = (lambda text: self.sessions.save(turn, text)) if turn is not None else None
            events = relay(opened.first, opened.stream, self.output_filter, save,
                           lambda: self.admission.release(tier, sequences), facts, sequences,
                           usage_wanted, usage_held)
            streaming = True
            return StreamReply(events, route)
        finally:
            if not streaming:
                self.admission.release(tier, sequences)

    async def _refuse(self, req: Request, decision: RouteDecision,
                      turn: PendingTurn | None) -> Outcome:
        """A blocked message gets a polite answer from the appliance; no engine sees it."""
        metrics.BLOCKED.labels(decision.rule.removeprefix("blocked.")).inc()
        metrics.ROUTING_DECISIONS.labels("none", decision.rule).inc()
        route = Route(None, decision.rule, None, turn.client_id if turn else None)
        return await self._own_reply(req, REFUSAL, route, turn)

    async def readiness(self) -> tuple[str, dict[str, Any]]:
        """ready; degraded (every tier answers, but one has fewer replicas running than it
        should: a node is gone); or not_ready."""
        tiers, running = await asyncio.gather(self.dispatcher.readiness(),
                                              asyncio.to_thread(running_replicas, APP_NAME))
        degraded = False
        for name, tier in tiers.items():
            engine = self.config.engine_tier(name)
            if engine != name:  # the probe answered with the engine's own tier
                tier |= {"tier": name, "engine": engine}
            if engine in running:
                target = self.config.tiers[engine].num_replicas
                tier["replicas"] = {"running": running[engine], "target": target}
                degraded |= running[engine] < target
        if not all(t["ready"] for t in tiers.values()) or self.admission.draining:
            return "not_ready", tiers
        return ("degraded" if degraded else "ready"), tiers
