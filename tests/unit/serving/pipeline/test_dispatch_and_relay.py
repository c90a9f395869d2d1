from __future__ import annotations

import json

from serving.pipeline.dispatch import TierDispatcher
from serving.pipeline.relay import relay
from serving.safety import OutputFilter
from tests.fake_tiers import LocalHandle

PHONE_REPLY = "Call us at 400-820-1234 any day"


class CountingHandle(LocalHandle):
    def __init__(self, inner: LocalHandle):
        super().__init__(inner.server)
        self.options_calls = 0

    def options(self, **kwargs: object) -> LocalHandle:
        self.options_calls += 1
        return super().options(**kwargs)


def _texts(events: list[str]) -> str:
    out = []
    for event in events:
        if event.startswith("data: {"):
            for choice in json.loads(event[6:])["choices"]:
                out.append(choice["delta"].get("content") or "")
    return "".join(out)


async def test_handles_are_built_once_and_answers_come_whole_or_streamed(tiers) -> None:
    counting = {name: CountingHandle(handle) for name, handle in tiers.items()}
    dispatcher = TierDispatcher(counting)
    whole = await dispatcher.open("kb", "chat", {"model": "kb", "messages": []})
    assert whole.result["status"] == 200 and whole.first is None
    for _ in range(3):
        streamed = await dispatcher.open("large", "chat", {"model": "large", "stream": True})
        assert streamed.result is None and streamed.first.startswith("data: {")
    assert {name: h.options_calls for name, h in counting.items()} == dict.fromkeys(tiers, 1)
    ready = await dispatcher.readiness()
    assert sorted(ready) == sorted(tiers) and all(r["ready"] for r in ready.values())


async def test_relay_masks_split_numbers_and_stores_what_went_out_before_done(tiers) -> None:
    dispatcher = TierDispatcher(tiers)
    opened = await dispatcher.open("small", "chat", {
        "model": "small", "stream": True, "structured_outputs": {"choice": [PHONE_REPLY]}})
    saved, ended = [], []

    async def save(text: str) -> None:
        saved.append(text)

    events = [e async for e in relay(opened.first, opened.stream, OutputFilter(), save,
                                     lambda: ended.append(True))]
    sent = _texts(events)
    assert "400-820-1234" not in sent and "*" * 12 in sent and sent.startswith("Call us at")
    assert saved == [sent] and ended == [True] and events[-1].startswith("data: [DONE]")
    assert not tiers["small"].streams[-1].cancelled


async def test_a_client_gone_mid_stream_cancels_the_engine_request(tiers) -> None:
    opened = await TierDispatcher(tiers).open("small", "chat", {
        "model": "small", "stream": True, "structured_outputs": {"choice": ["one two three four"]}})
    events = relay(opened.first, opened.stream, OutputFilter(), None, lambda: None)
    await events.__anext__()
    await events.aclose()  # what Starlette does when the client disconnects
    assert tiers["small"].streams[-1].cancelled


async def test_a_stream_the_engine_broke_off_is_not_stored_as_an_answer() -> None:
    # vLLM ends a failed stream with an error event and then [DONE].
    chunk = {"choices": [{"index": 0, "delta": {"content": "The lamp costs"}}]}
    error = {"error": {"message": "engine died", "type": "InternalServerError", "code": 500}}

    class Broken:
        cancelled = False

        def __init__(self) -> None:
            self.rest = iter([f"data: {json.dumps(error)}\n\n", "data: [DONE]\n\n"])

        def __aiter__(self):
            return self

        async def __anext__(self) -> str:
            try:
                return next(self.rest)
            except StopIteration:
                raise StopAsyncIteration from None

    saved: list[str] = []

    async def save(text: str) -> None:
        saved.append(text)

    events = [e async for e in relay(f"data: {json.dumps(chunk)}\n\n", Broken(), OutputFilter(),
                                     save, lambda: None)]
    assert any('"engine died"' in e for e in events) and events[-1] == "data: [DONE]\n\n"
    assert saved == []  # the partial "The lamp costs" is no acknowledged turn
