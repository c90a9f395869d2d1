"""The knowledge base in the chain, with the real retriever (BM25 + multilingual-e5) over the
shipped Lumen Home knowledge base, and fake tiers: which mode each question gets, that `kb`
and `abstain` never reach an engine, and that the fact guard replaces an invented number."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from kernel.config import KnowledgeConfig
from kernel.errors import APIError
from knowledge.embedder import E5Small
from knowledge.retrieval import EmbeddingCache
from knowledge.service import KnowledgeService
from serving import metrics
from serving.pipeline.chain import RequestPipeline
from serving.pipeline.ground import KnowledgeStage
from serving.pipeline.outcome import Reply, StreamReply
from serving.protocol import ChatRequest
from tests.unit.serving.pipeline.conftest import CLIENT, make_config


@pytest.fixture(scope="module")
def cache() -> EmbeddingCache:
    return EmbeddingCache(E5Small())  # embeds the shipped entries once for the module


@pytest.fixture
def kb_pipeline(tmp_path: Path, tiers, cache) -> RequestPipeline:
    config = make_config(tmp_path, knowledge={"enabled": True})
    service = KnowledgeService(config.knowledge, cache)
    return RequestPipeline(config, tiers, KnowledgeStage(config, service))


def _ask(text: str, **extra: object) -> ChatRequest:
    return ChatRequest.model_validate(
        {"model": "auto", "messages": [{"role": "user", "content": text}]} | extra)


def _events(chunk: str) -> list[str]:
    """The SSE events in one chunk of a stream (an answer the appliance wrote itself
    comes as one chunk of events, then `[DONE]`)."""
    return [f"{event}\n\n" for event in chunk.split("\n\n") if event]


async def _streamed(outcome: StreamReply) -> list[str]:
    return [event async for chunk in outcome.events for event in _events(chunk)]


def _calls(tiers) -> int:
    return sum(len(t.engine.bodies) for t in tiers.values())


async def test_a_confident_fact_is_answered_from_the_entry_without_an_engine(
        kb_pipeline, tiers) -> None:
    outcome = await kb_pipeline.chat(_ask("How many watts does the Orbit ceiling light pull?"),
                                     {"x-session-id": "f1"}, CLIENT)
    assert isinstance(outcome, Reply)
    assert outcome.text() == "The Orbit ceiling light uses 24 W."
    assert outcome.route.header() == ("tier=none; rule=knowledge; mode=kb; "
                                      "sources=kb:orbit-ceiling-light-power@v1")
    assert _calls(tiers) == 0
    stored = kb_pipeline.sessions.store.export("key-a/f1")
    assert stored[-1]["content"] == "The Orbit ceiling light uses 24 W."


async def test_a_chinese_question_gets_the_chinese_answer_streamed(kb_pipeline, tiers) -> None:
    outcome = await kb_pipeline.chat(_ask("Halo 落地灯的质保期是几年？", stream=True), {}, CLIENT)
    assert isinstance(outcome, StreamReply) and outcome.route.mode == "kb" and outcome.ready
    chunks = [c async for c in outcome.events]
    # Every event before [DONE] in one write; [DONE] alone, once the turn is stored.
    assert len(chunks) == 2 and len(_events(chunks[0])) > 3
    events = [e for c in chunks for e in _events(c)]
    text = "".join(json.loads(e[6:])["choices"][0]["delta"].get("content", "")
                   for e in events if e.startswith("data: {"))
    assert text == "Halo 落地灯 保修 3 年。" and events[-1] == "data: [DONE]\n\n"
    assert _calls(tiers) == 0


async def test_a_streamed_kb_answer_goes_out_before_its_turn_is_stored_and_ends_after(
        kb_pipeline, monkeypatch) -> None:
    stored = asyncio.Event()
    save = kb_pipeline.sessions.save

    async def slow_save(turn, text: str) -> None:
        await stored.wait()  # the store holds the write until the text went out
        await save(turn, text)

    monkeypatch.setattr(kb_pipeline.sessions, "save", slow_save)

    async def text_before_the_store() -> tuple[AsyncIterator[str], str]:
        outcome = await kb_pipeline.chat(_ask(
            "How many watts does the Orbit ceiling light pull?", stream=True),
            {"x-session-id": "s-early"}, CLIENT)
        events, text = aiter(outcome.events), ""
        while "24 W" not in text:
            for event in _events(await anext(events)):
                text += json.loads(event[6:])["choices"][0]["delta"].get("content", "")
        return events, text

    # A hang guard, not a timing: text that waited for the store would never come.
    events, text = await asyncio.wait_for(text_before_the_store(), timeout=60)
    stored.set()
    rest = [e async for e in events]
    assert rest[-1] == "data: [DONE]\n\n"
    assert kb_pipeline.sessions.store.export("key-a/s-early")[-1]["content"] == text


async def test_a_kb_answer_the_store_refused_never_says_done(kb_pipeline, monkeypatch) -> None:
    async def refused(turn, text: str) -> None:
        raise APIError(503, "the conversation store is busy", code="store_busy")

    monkeypatch.setattr(kb_pipeline.sessions, "save", refused)
    outcome = await kb_pipeline.chat(_ask("How many watts does the Orbit ceiling light pull?",
                                          stream=True), {"x-session-id": "s-busy"}, CLIENT)
    events = [e async for e in outcome.events]
    assert "data: [DONE]\n\n" not in events
    assert json.loads(events[-1][6:])["error"]["code"] == "store_busy"


async def test_a_follow_up_takes_the_product_from_the_session(kb_pipeline) -> None:
    await kb_pipeline.chat(_ask("Which colours does the Iris floor lamp come in?"),
                           {"x-session-id": "f2"}, CLIENT)
    outcome = await kb_pipeline.chat(_ask("那它保修多久?"), {"x-session-id": "f2"}, CLIENT)
    assert outcome.route.sources == ("kb:iris-floor-lamp-warranty@v1",)
    assert outcome.text() == "Iris 落地灯 保修 5 年。"


@pytest.mark.parametrize(("earlier", "sources"), [
    # "the floor lamp" is the one the conversation was about...
    ("Which colours does the Halo floor lamp come in?", ("kb:halo-floor-lamp-price@v1",)),
    ("Iris 落地灯有哪些颜色？", ("kb:iris-floor-lamp-price@v1",)),
    # ...and never the clip lamp it was about before: two floor lamps, none said, no answer.
    ("What does the Kite clip lamp cost?", ()),
])
async def test_a_follow_up_naming_a_kind_means_the_sessions_product_of_that_kind(
        kb_pipeline, earlier: str, sources: tuple[str, ...]) -> None:
    session = {"x-session-id": f"kind-{len(earlier)}"}
    await kb_pipeline.chat(_ask(earlier), session, CLIENT)
    outcome = await kb_pipeline.chat(_ask("and how much is the floor lamp?"), session, CLIENT)
    assert outcome.route.sources == sources
    if not sources:
        assert outcome.route.mode == "abstain"


async def test_a_kind_only_one_product_has_names_that_product(kb_pipeline) -> None:
    outcome = await kb_pipeline.chat(_ask("How many watts does the ceiling light use?"), {},
                                     CLIENT)
    assert outcome.route.sources == ("kb:orbit-ceiling-light-power@v1",)


async def test_a_name_only_one_answer_states_makes_that_entry_the_answer(
        kb_pipeline, tiers) -> None:
    # Abstained until 2026-12-04: similarity 0.871 and 0.866, under the relevance bar.
    for question in ("Is Mastercard accepted?", "Do you take PayPal?"):
        outcome = await kb_pipeline.chat(_ask(question), {}, CLIENT)
        assert outcome.route.mode == "kb" and outcome.route.sources == ("kb:payment@v1",)
        assert "Mastercard" in outcome.text()
    near = await kb_pipeline.chat(_ask("Can I get a refund to my PayPal?"), {}, CLIENT)
    assert near.route.mode != "kb"  # the refund entry is closer in meaning: both offered
    assert _calls(tiers) == 0


async def test_kb_and_offered_answers_come_in_the_personas_greeting_and_closing(
        tmp_path: Path, tiers, cache) -> None:
    persona = {"system": "You are Aria.", "greeting": "Hello, Aria here.",
               "closing": "Anything else?"}
    config = make_config(tmp_path, knowledge={"enabled": True},
                         sessions={"personas": {"aria": persona}})
    chain = RequestPipeline(config, tiers, KnowledgeStage(config, KnowledgeService(
        config.knowledge, cache)))
    for question, mode in (("How many watts does the Orbit ceiling light pull?", "kb"),
                           ("Which ways to pay work at your checkout?", "suggest")):
        outcome = await chain.chat(_ask(question, persona="aria"), {}, CLIENT)
        assert outcome.route.mode == mode
        assert outcome.text().startswith("Hello, Aria here. ")
        assert outcome.text().endswith(" Anything else?")
    plain = await chain.chat(_ask("Which ways to pay work at your checkout?"), {}, CLIENT)
    assert not plain.text().startswith("Hello")


async def test_an_unknown_product_is_abstained_with_a_hand_off(kb_pipeline, tiers) -> None:
    outcome = await kb_pipeline.chat(_ask("How much is the Zephyr standing desk?"), {}, CLIENT)
    assert outcome.route.mode == "abstain" and outcome.route.tier is None
    assert "colleague" in outcome.text() and _calls(tiers) == 0
    chinese = await kb_pipeline.chat(_ask("寄到开罗要多久？"), {}, CLIENT)
    assert chinese.route.mode == "abstain" and "人工" in chinese.text()


async def test_the_fact_guard_replaces_an_invented_number(kb_pipeline, tiers) -> None:
    # Two kinds of fact asked, no single entry: the tier answers, grounded, and invents a
    # price.
    req = _ask("How much power does the Halo floor lamp use, and what does it cost?",
               structured_outputs={"choice": ["The Halo floor lamp is 999 euros."]})
    outcome = await kb_pipeline.chat(req, {}, CLIENT)
    assert outcome.route.mode == "grounded" and outcome.route.tier is not None
    body = next(t.engine.bodies[0] for t in tiers.values() if t.engine.bodies)
    assert "FACTS:" in body["messages"][0]["content"]
    assert "999" not in outcome.text()
    assert outcome.text() == "The Halo floor lamp costs 129.00 euros."


async def test_the_fact_guard_replaces_a_colour_the_product_does_not_come_in(
        kb_pipeline) -> None:
    # The 135M model says yes to the colour the question names; the Nova is brass and
    # terracotta. A colour is no number: the value words catch it.
    req = _ask("Is the Nova available in black, and what does it cost?",
               structured_outputs={"choice": ["The Nova is available in black."]})
    outcome = await kb_pipeline.chat(req, {}, CLIENT)
    assert outcome.route.mode == "grounded"
    assert "black" not in outcome.text()
    assert "The Nova bedside lamp comes in brass and terracotta." in outcome.text()


async def test_a_replaced_shop_wide_answer_is_the_asked_entry_or_the_entries_offered(
        kb_pipeline) -> None:
    # A hand-off the router is sure of, about one entry confidently: the model talked about
    # the hours; the question asked for the phone number (2026-12-04, the later set).
    phone = _ask("人工客服电话是哪个？", structured_outputs={"choice": ["客服全年无休。"]})
    outcome = await kb_pipeline.chat(phone, {}, CLIENT)
    assert outcome.route.mode == "grounded"
    assert outcome.text() == "请拨打 Lumen Home 客服电话 400-820-1234。"
    # A complaint near an entry, none confident: the entries offered, not "I don't know".
    late = _ask("The lamp arrived a month ago and I've changed my mind. Can I still send it "
                "back?", structured_outputs={"choice": ["Sure, within 30 days."]})
    outcome = await kb_pipeline.chat(late, {}, CLIENT)
    assert outcome.route.mode == "grounded"
    assert "30" not in outcome.text() and "45 days" in outcome.text()
    assert "colleague" in outcome.text()


async def test_a_grounded_answer_that_keeps_to_the_facts_is_sent(kb_pipeline) -> None:
    req = _ask("How much power does the Halo floor lamp use, and what does it cost?",
               structured_outputs={"choice": ["It costs 129 euros."]})
    outcome = await kb_pipeline.chat(req, {}, CLIENT)
    assert outcome.route.mode == "grounded" and outcome.text() == "It costs 129 euros."


async def test_an_open_answer_stops_before_a_number_no_source_states(kb_pipeline) -> None:
    """Open answers stream; their numbers are checked as they come (the 2026-12-04 miss: a
    postage question read as order status, answered "The shipping fee is 10 euros")."""
    invented = "Hi! Your order of 70 euros ships in 3 days, for a fee of 9.90 euros."
    req = ChatRequest.model_validate({
        "model": "auto", "stream": True, "structured_outputs": {"choice": [invented]},
        "messages": [{"role": "user", "content": "I ordered for 70 euros."},
                     {"role": "assistant", "content": "Thank you!"},
                     {"role": "user", "content": "Hello!"}]})
    stopped = metrics.KB_CORRECTIONS.labels("stopped")
    before = stopped._value.get()
    outcome = await kb_pipeline.chat(req, {"x-session-id": "o1"}, CLIENT)
    assert isinstance(outcome, StreamReply) and outcome.route.mode == "open"
    events = [e async for e in outcome.events]
    chunks = [json.loads(e[6:])["choices"] for e in events if e.startswith("data: {")]
    text = "".join(c[0]["delta"].get("content") or "" for c in chunks if c)
    assert text.startswith("Hi! Your order of 70 euros ships in …")  # 70: the conversation's
    assert "3" not in text and "9.90" not in text and "colleague" in text
    assert [c[0]["finish_reason"] for c in chunks if c][-1] == "stop"
    assert events[-1] == "data: [DONE]\n\n"
    assert kb_pipeline.sessions.store.export("key-a/o1")[-1]["content"] == text
    whole = await kb_pipeline.chat(_ask("Hello!", structured_outputs={"choice": [invented]}),
                                   {}, CLIENT)
    assert whole.text() == "Hi! Your order of …" + text.split("…", 1)[1]  # no 70 said here
    assert stopped._value.get() == before + 2


async def test_an_open_answer_with_the_entries_numbers_and_a_list_streams_whole(
        kb_pipeline) -> None:
    told = "Steps:\n1. Check the plug.\n2. Call us, we answer 24/7."
    req = ChatRequest.model_validate({
        "model": "auto", "stream": True, "structured_outputs": {"choice": [told]},
        "messages": [{"role": "system", "content": "Lumen Home answers 24/7."},
                     {"role": "user", "content": "Hello!"}]})
    outcome = await kb_pipeline.chat(req, {}, CLIENT)
    assert isinstance(outcome, StreamReply) and outcome.route.mode == "open"
    events = [e async for e in outcome.events]
    text = "".join(json.loads(e[6:])["choices"][0]["delta"].get("content") or ""
                   for e in events if e.startswith("data: {") and json.loads(e[6:])["choices"])
    assert text == told


async def test_small_talk_stays_open_and_knowledge_off_skips_it(kb_pipeline) -> None:
    hello = await kb_pipeline.chat(_ask("Hello!"), {}, CLIENT)
    assert hello.route.mode == "open" and hello.route.tier is not None
    off = await kb_pipeline.chat(_ask("How many watts does the Orbit ceiling light pull?"),
                                 {"x-onlycs-knowledge": "off"}, CLIENT)
    assert off.route.mode is None and off.route.tier is not None


def test_a_publish_serves_the_new_version_and_keeps_the_old(tmp_path: Path, cache) -> None:
    service = KnowledgeService(KnowledgeConfig(dir=tmp_path / "kb"), cache)
    before = service.snapshot()
    entries = [e for e in before.kb.entries if e.id != "support-phone"]
    assert service.publish(entries) == 2
    assert service.answer("What is the support phone number?", None).version == 2
    assert "support-phone" in before.kb.by_id  # a request holding v1 still answers from v1
    assert service.store.versions() == [1, 2]
    service.rollback(1)
    assert service.snapshot().kb.version == 1


async def test_a_chat_without_a_user_message_is_left_to_the_tier(kb_pipeline) -> None:
    req = ChatRequest.model_validate({"model": "auto", "messages": [{"role": "tool"}]})
    outcome = await kb_pipeline.chat(req, {}, CLIENT)
    assert outcome.route.mode is None and outcome.route.tier is not None


async def test_a_pinned_model_is_the_tier_alone_unless_grounding_is_asked(
        kb_pipeline, tiers) -> None:
    question = "How many watts does the Orbit ceiling light pull?"
    pinned = ChatRequest.model_validate(
        {"model": "small", "messages": [{"role": "user", "content": question}]})
    alone = await kb_pipeline.chat(pinned, {}, CLIENT)
    assert alone.route.header() == "tier=small; rule=pinned" and _calls(tiers) == 1
    grounded = await kb_pipeline.chat(pinned, {"x-onlycs-knowledge": "on"}, CLIENT)
    assert grounded.route.mode == "kb" and _calls(tiers) == 1


async def test_a_grounded_answer_without_any_of_its_facts_is_replaced(kb_pipeline) -> None:
    req = _ask("How much power does the Halo floor lamp use, and what does it cost?",
               structured_outputs={"choice": [
                   "The Halo floor lamp is a luxury product for a premium."]})
    outcome = await kb_pipeline.chat(req, {}, CLIENT)
    assert outcome.route.mode == "grounded"
    assert "The Halo floor lamp costs 129.00 euros." in outcome.text()
    assert "luxury" not in outcome.text()


def test_a_grounded_answer_keeps_the_shops_own_phone_and_masks_others(kb_pipeline) -> None:
    from knowledge.modes import ModeChoice
    from knowledge.retrieval import Hit
    from knowledge.service import Answer

    snapshot = kb_pipeline.knowledge.service.snapshot()
    entry = snapshot.kb.by_id["support-phone"]
    answer = Answer(ModeChoice("grounded", "test", (Hit(entry, 1, 1, 1, "q"),)), 1, "en",
                    (), 0.0)
    text = kb_pipeline.knowledge.mask_except_sources(
        kb_pipeline.output_filter, "Call 400-820-1234, or my cousin on 13800138000.", answer)
    assert "400-820-1234" in text and "13800138000" not in text


async def test_an_unsure_intent_does_not_stop_a_confident_entry(kb_pipeline, tiers) -> None:
    # The n-gram classifier reads this colour question as a hand-off, at 17 %.
    outcome = await kb_pipeline.chat(_ask("Nova 床头灯有什么配色？"), {}, CLIENT)
    assert outcome.route.mode == "kb" and _calls(tiers) == 0
    assert outcome.route.sources == ("kb:nova-bedside-lamp-colors@v1",)
    # A complaint the classifier is sure of still reaches the large tier, grounded.
    angry = await kb_pipeline.chat(_ask("This is unacceptable, my Nova bedside lamp arrived "
                                        "broken!"), {}, CLIENT)
    assert angry.route.mode == "grounded" and angry.route.tier == "large"


async def test_an_unsure_intent_leaves_an_unknown_question_abstained(kb_pipeline,
                                                                    tiers) -> None:
    # Read as order status at under 30 %: no entry is relevant, and it is a question, so
    # nobody gets an answer a tier made up (it went to a tier before).
    city = await kb_pipeline.chat(_ask("I live in Reykjavik, when would my parcel arrive?"),
                                  {}, CLIENT)
    assert city.route.mode == "abstain" and "colleague" in city.text()
    assert _calls(tiers) == 0
    # The same unsure reading of a remark that asks nothing still goes to a tier.
    remark = await kb_pipeline.chat(_ask("I saw your shop on TV last week"), {}, CLIENT)
    assert remark.route.mode == "open" and _calls(tiers) == 1


async def test_a_shop_wide_question_without_a_decisive_entry_is_offered_the_entries(
        kb_pipeline, tiers) -> None:
    # No engine: the 135M model answered such questions from the entries rarely (README).
    question = "退货寄回后多久能收到退款？"
    outcome = await kb_pipeline.chat(_ask(question, stream=True), {}, CLIENT)
    assert isinstance(outcome, StreamReply)
    events = await _streamed(outcome)
    text = "".join(json.loads(e[6:])["choices"][0]["delta"].get("content", "")
                   for e in events if e.startswith("data: {"))
    assert outcome.route.mode == "suggest" and _calls(tiers) == 0
    assert outcome.route.header().startswith("tier=none; rule=knowledge.suggest; mode=suggest")
    assert "kb:refund-time@v1" in outcome.route.sources
    assert "7 个工作日内到账" in text and "人工" in text  # the refund entry, and the hand-off
    assert text.count("\n- ") == len(outcome.route.sources)


async def test_with_suggest_off_a_shop_wide_answer_that_echoes_the_question_is_replaced(
        tmp_path: Path, tiers, cache) -> None:
    config = make_config(tmp_path, knowledge={"enabled": True, "suggest": False})
    pipeline = RequestPipeline(config, tiers, KnowledgeStage(
        config, KnowledgeService(config.knowledge, cache)))
    # The 135M model often repeats a Chinese question instead of answering it.
    echo = "退货寄回后多久能收到退款？"
    outcome = await pipeline.chat(_ask(echo, structured_outputs={"choice": [echo]}), {},
                                  CLIENT)
    assert outcome.route.mode == "grounded" and outcome.text() != echo
    assert "7 个工作日内到账" in outcome.text()  # the refund entry, among the grounding ones
    # Entries only loosely like the question (no kb-strength match): the abstain reply.
    loose = "退款能退到别的卡上吗？"
    unsure = await pipeline.chat(_ask(loose, structured_outputs={"choice": [loose]}), {},
                                 CLIENT)
    assert unsure.route.mode == "grounded" and "人工" in unsure.text()


@pytest.mark.parametrize("usage", [False, True])
async def test_a_stopped_open_answer_ends_at_once_and_its_engine_request_is_cancelled(
        kb_pipeline, tiers, usage: bool) -> None:
    """After the stop the engine's words would all be dropped: the request is cancelled
    and [DONE] follows the stop; a client that asked for the usage event gets it first, for
    the tokens generated until then (the engine counted them on every event)."""
    invented = "Your order ships in 3 days " + "and then some more words " * 40
    body: dict = {"model": "auto", "stream": True, "structured_outputs": {"choice": [invented]},
                  "messages": [{"role": "user", "content": "Hello!"}]}
    if usage:
        body["stream_options"] = {"include_usage": True}
    outcome = await kb_pipeline.chat(ChatRequest.model_validate(body),
                                     {"x-session-id": f"cut-{usage}"}, CLIENT)
    assert isinstance(outcome, StreamReply) and outcome.route.mode == "open"
    events = [e async for e in outcome.events]
    stream = next(t.streams[-1] for t in tiers.values() if t.streams)
    assert stream.cancelled
    parsed = [json.loads(e[6:]) for e in events if e.startswith("data: {")]
    text = "".join(p["choices"][0]["delta"].get("content") or "" for p in parsed
                   if p["choices"])
    assert text.startswith("Your order ships in …") and "3" not in text and "more" not in text
    assert events[-1] == "data: [DONE]\n\n"
    assert kb_pipeline.sessions.store.export(f"key-a/cut-{usage}")[-1]["content"] == text
    # The stop event, the usage event if asked, then [DONE]: nothing waited on the engine.
    stop = -3 if usage else -2
    assert json.loads(events[stop][6:])["choices"][0]["finish_reason"] == "stop"
    # Usage only at the end, as the client asked: the engine's on every event is taken off.
    assert all("usage" not in p for p in parsed if p["choices"])
    if usage:
        final = json.loads(events[-2][6:])
        assert final["choices"] == [] and final["id"] == "chatcmpl-1"
        # "Your order ships in 3 days": 6 words (tokens here) written when the duration
        # was whole and the guard stopped; the prompt "Hello!" is one.
        assert final["usage"] == {"prompt_tokens": 1, "completion_tokens": 6,
                                  "total_tokens": 7}


async def test_an_open_answer_with_usage_asked_carries_it_once_at_the_end(
        kb_pipeline, tiers) -> None:
    """The engine is asked for usage on every event (so a stopped answer could end with it);
    the client asked for the last one only, and gets only that one."""
    body: dict = {"model": "auto", "stream": True, "stream_options": {"include_usage": True},
                  "structured_outputs": {"choice": ["Nice to hear from you, how can I help"]},
                  "messages": [{"role": "user", "content": "Hello!"}]}
    outcome = await kb_pipeline.chat(ChatRequest.model_validate(body), {}, CLIENT)
    assert isinstance(outcome, StreamReply) and outcome.route.mode == "open"
    events = [e async for e in outcome.events]
    stream = next(t.streams[-1] for t in tiers.values() if t.streams)
    sent = next(t.engine.bodies[-1] for t in tiers.values() if t.engine.bodies)
    assert sent["stream_options"] == {"include_usage": True, "continuous_usage_stats": True}
    parsed = [json.loads(e[6:]) for e in events if e.startswith("data: {")]
    assert all("usage" not in p for p in parsed[:-1])
    assert parsed[-1]["choices"] == [] and parsed[-1]["usage"]["completion_tokens"] == 9
    assert events[-1] == "data: [DONE]\n\n" and not stream.cancelled


async def test_the_fact_guard_replaces_an_answer_saying_a_name_no_entry_writes(
        kb_pipeline) -> None:
    # Read as a hand-off, the question reaches a tier with the payment entry, and the
    # 135M model said yes to the bank transfer no entry mentions (2026-12-05, moonrise).
    req = _ask("Can I pay using a bank transfer?",
               structured_outputs={"choice": ["Yes, you can pay using a bank transfer."]})
    outcome = await kb_pipeline.chat(req, {}, CLIENT)
    assert outcome.route.mode == "grounded"
    assert "bank transfer" not in outcome.text().lower()
    assert "Visa" in outcome.text()


async def test_a_name_said_where_no_entry_names_one_does_not_replace_an_answer(
        kb_pipeline) -> None:
    # 东西 ("things") is also one of jieba's place words; a complaint's grounded answer that
    # says it is the warranty claim's all the same.
    text = "很抱歉您的东西坏了。请把订单号和故障照片发邮件到 warranty@lumenhome.example。"
    req = _ask("买的东西坏了，我很生气！", structured_outputs={"choice": [text]})
    outcome = await kb_pipeline.chat(req, {}, CLIENT)
    assert outcome.route.mode == "grounded"
    assert outcome.text() == text
