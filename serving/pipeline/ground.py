"""Ground: what the knowledge base says about a chat request. The answer mode decides the
rest of the path: `kb` and `abstain` are answered here without an engine; `grounded` puts
the entries into the tier's prompt and checks the tier's answer with the fact guard."""

from __future__ import annotations

import asyncio
from typing import Any

from kernel.config import AppConfig
from knowledge.entries import Entry, Language
from knowledge.guard import check, facts, unsupported_values
from knowledge.modes import MODES
from knowledge.prompt import grounding
from knowledge.service import Answer, KnowledgeService
from knowledge.tokens import tokens
from serving import metrics
from serving.pipeline.decide import RouteDecision
from serving.pipeline.outcome import Route
from serving.protocol import ChatRequest, content_text
from serving.safety import FactCheck, OutputFilter

KB_MODEL = "onlycs-kb"
# `x-onlycs-knowledge: off` asks for the tiers alone (what `kb eval --both` compares with);
# `on` grounds a pinned model too.
KNOWLEDGE_HEADER = "x-onlycs-knowledge"


def answered_by_appliance(answer: Answer | None) -> bool:
    return answer is not None and answer.mode in ("kb", "suggest", "abstain")


def knowledge_route(tier: str | None, rule: str, answer: Answer | None, *,
                    adapter: str | None = None, session_id: str | None = None) -> Route:
    """The route a request takes once the knowledge base has spoken (the chain and
    `router explain` both name it so)."""
    if answer is None:
        return Route(tier, rule, adapter, session_id)
    sources = tuple(answer.sources())
    if answered_by_appliance(answer):
        rule = "knowledge" if answer.mode == "kb" else f"knowledge.{answer.mode}"
        return Route(None, rule, None, session_id, mode=answer.mode, sources=sources)
    return Route(tier, rule, adapter, session_id, mode=answer.mode, sources=sources)


class KnowledgeStage:
    def __init__(self, config: AppConfig, service: KnowledgeService | None = None):
        self.config = config.knowledge
        self.personas = config.sessions.personas
        self.service = service if service is not None or not self.config.enabled else \
            KnowledgeService(self.config)
        self._shown_version: int | None = None
        if self.service is not None:  # every series exists from the start, at 0
            for mode in MODES:
                metrics.KB_ANSWERS.labels(mode)
            for replacement in ("entry", "offered", "abstain", "stopped"):
                metrics.KB_CORRECTIONS.labels(replacement)

    async def consult(self, req: ChatRequest, decision: RouteDecision) -> Answer | None:
        texts = req.user_texts()
        if self.service is None or not texts:  # no user message: nothing to look up
            return None
        earlier = texts[:-1][-self.config.history_turns:] if self.config.history_turns else []
        context = " ".join(reversed(earlier))
        snapshot = self.service.snapshot()
        # A new question's embedding (milliseconds of C code that lets go of the GIL) runs
        # in a thread, so other requests go on meanwhile; a question asked before costs
        # BM25 and cached rows, a fraction of a millisecond: less than the hop.
        if snapshot.retriever.embeds(texts[-1], context):
            answer = await asyncio.to_thread(self.service.answer, texts[-1], decision.intent,
                                             context, snapshot, sure=decision.intent_sure)
        else:
            answer = self.service.answer(texts[-1], decision.intent, context, snapshot,
                                         sure=decision.intent_sure)
        metrics.KB_RETRIEVAL.observe(answer.seconds)
        metrics.KB_ANSWERS.labels(answer.mode).inc()
        self._show_version(answer.version)
        return answer

    def _show_version(self, version: int) -> None:
        if version != self._shown_version:
            if self._shown_version is not None:
                metrics.KB_VERSION.labels(str(self._shown_version)).set(0)
            metrics.KB_VERSION.labels(str(version)).set(1)
            assert self.service is not None
            metrics.KB_ENTRIES.set(len(self.service.snapshot().kb))
            self._shown_version = version

    def reply_text(self, answer: Answer, persona: str | None) -> str:
        """kb: the entry's verified answer in the question's language; suggest: the offered
        entries in the configured reply; both in the persona's greeting and closing.
        abstain: the configured reply."""
        assert self.service is not None
        if answer.mode == "abstain":
            return self.service.abstain_text(answer.lang)
        if answer.mode == "suggest":
            text = self.service.suggest_text(answer.lang,
                                             [h.entry for h in answer.choice.entries])
        else:
            best = answer.choice.best
            assert best is not None
            text = best.entry.answer(answer.lang)
        template = self.personas.get(persona) if persona else None
        if template is not None:
            text = " ".join(p for p in (template.greeting, text, template.closing) if p)
        return text

    def fact_check(self, req: ChatRequest, answer: Answer) -> FactCheck:
        """An `open` answer's numbers must be in the conversation or in the entries retrieval
        found; the first that is not ends the answer, and the abstain reply follows."""
        assert self.service is not None
        sources = (*(content_text(m.content) for m in req.messages),
                   *(t for h in answer.hits if h.eligible for t in h.entry.texts()))
        return FactCheck(tuple(sources), f"…\n\n{self.service.abstain_text(answer.lang)}",
                         metrics.KB_CORRECTIONS.labels("stopped").inc)

    @staticmethod
    def ground_body(body: dict[str, Any], answer: Answer) -> None:
        """Put the grounding in front: merged into the first system message, or a new one."""
        text = grounding([h.entry for h in answer.choice.entries], answer.lang)
        messages = body["messages"]
        if messages and messages[0].get("role") in ("system", "developer") and isinstance(
                messages[0].get("content"), str):
            messages[0] = {**messages[0], "content": f"{messages[0]['content']}\n\n{text}"}
        else:
            messages.insert(0, {"role": "system", "content": text})

    def guard(self, text: str, question: str, answer: Answer) -> tuple[str, str | None]:
        """The text to send, and what replaced it (None: it passed).

        Replaced: an answer that states a fact in no source, or a value word (a colour, a
        city) in none of the entries, even one the question said, or says a name the
        question said and no entry writes ("Yes, you can pay using a bank transfer"); and,
        when the best entry states facts, an answer that states none of the entries' ("a
        luxury product for a premium": no price at all; the question echoed back). The
        replacement is the entry the answer talks about ("... is 999 euros": the price
        entry) when its words say which, else the entries' answers together (every one
        true, the asked one among them); with no named subject, the best entry when it
        would have been a kb answer, else the entries offered as `suggest` offers them (the
        abstain reply with `suggest` off)."""
        entries: list[Entry] = [h.entry for h in answer.choice.entries]
        own = [t for e in entries for t in e.texts()]
        sources = [question, *own]
        best = answer.choice.best
        subject = best is not None and bool(best.entry.mentions)
        stated = facts(text)
        known = set().union(*(facts(e.answer(answer.lang)) for e in entries))
        lowered = text.lower()
        invented = not check(text, sources).passed or bool(
            unsupported_values(text, own, answer.values)) or any(
            name.lower() in lowered for name in answer.strangers)
        empty = (best is not None and bool(facts(best.entry.answer(answer.lang)))
                 and not stated & known)
        if not invented and not empty:
            return text, None
        assert self.service is not None and best is not None
        hits = answer.choice.entries
        lead = best.score - hits[1].score if len(hits) > 1 else 1.0
        if (not subject and best.dense >= self.config.kb_similarity
                and lead >= self.config.kb_margin):
            # The question is the entry's, whatever else the answer talked about.
            replacement, kind = best.entry.answer(answer.lang), "entry"
        elif subject or best.dense >= self.config.kb_similarity:
            said = {t for t in tokens(text) if not t[0].isdigit()}
            overlap = {e.id: len(said & set(tokens(self._words(e, answer.lang))))
                       for e in entries}
            top = max(overlap.values())
            if top and list(overlap.values()).count(top) == 1:
                about = next(e for e in entries if overlap[e.id] == top)
                replacement = about.answer(answer.lang)
            else:
                replacement = " ".join(e.answer(answer.lang) for e in entries)
            kind = "entry"
        elif self.config.suggest:
            replacement, kind = self.service.suggest_text(answer.lang, entries), "offered"
        else:
            replacement, kind = self.service.abstain_text(answer.lang), "abstain"
        metrics.KB_CORRECTIONS.labels(kind).inc()
        return replacement, kind

    @staticmethod
    def mask_except_sources(output_filter: OutputFilter, text: str, answer: Answer) -> str:
        """The output filter's masking, less the spans that are the grounding entries' own
        facts (the fact guard has checked them): a customer asking for the support number
        gets it, a number the model made up is still masked."""
        allowed = set().union(*(facts(h.entry.answer(answer.lang))
                                for h in answer.choice.entries))
        spans = [(a, b) for a, b in output_filter.spans(text)
                 if not (found := facts(text[a:b])) or not found <= allowed]
        return output_filter.mask(text, spans)

    @staticmethod
    def _words(entry: Entry, lang: Language) -> str:
        """An entry's own words, without the product name every entry of it shares."""
        text = entry.answer(lang)
        for name in entry.mentions:
            text = text.replace(name, " ")
        return text
