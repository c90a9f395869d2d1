from __future__ import annotations

import pytest

from serving.router.sensitive import SensitiveMatcher
from serving.safety import OutputFilter

TEXT = ("Sure! Our hotline is 13800138000, email support@lumen-home.com any time. "
        "Card 6222020200112233445, ID 11010119900307777X, US line (512) 555-0199. Bye.")


def test_personal_data_is_masked() -> None:
    masked = OutputFilter().mask(TEXT)
    for secret in ("13800138000", "support@lumen-home.com", "6222020200112233445",
                   "11010119900307777X", "555-0199"):
        assert secret not in masked
    assert masked.startswith("Sure! Our hotline is ***********, email ")
    assert masked.endswith("Bye.") and len(masked) == len(TEXT)


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 11, 13, 64])
def test_stream_masking_equals_whole_text_masking(size: int) -> None:
    output_filter = OutputFilter(SensitiveMatcher({"internal": ("mask", ["project lumos"])}))
    text = TEXT + " Ask about Project Lumos."
    stream = output_filter.stream()
    pieces = [stream.feed(text[i:i + size]) for i in range(0, len(text), size)]
    assert "".join(pieces) + stream.flush() == output_filter.mask(text)
    assert "13800138000" not in "".join(pieces) and "Lumos" not in "".join(pieces)


def test_sse_rewrite_masks_a_number_split_across_events() -> None:
    import json

    from serving.safety import SSEFilter

    pieces = ["Call ", "138", "0013", "8000", " now, it is free of charge for everyone who ",
              "calls today and tomorrow."]
    def event(piece: str) -> str:
        choice = {"index": 0, "delta": {"content": piece}, "finish_reason": None}
        return "data: " + json.dumps({"choices": [choice]}) + "\n\n"

    events = [event(p) for p in pieces]
    events.append('data: {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}\n\n')
    events.append("data: [DONE]\n\n")
    sse = SSEFilter(OutputFilter())
    out = [sse.rewrite(e) for e in events]
    text = "".join(json.loads(e[6:])["choices"][0]["delta"].get("content") or ""
                   for e in out if e.startswith("data: {"))
    assert text == "Call *********** now, it is free of charge for everyone who calls today " \
                   "and tomorrow."
    assert out[-1] == "data: [DONE]\n\n"


def test_an_event_the_filter_leaves_alone_goes_out_as_the_engine_wrote_it() -> None:
    import json

    from serving.safety import SSEFilter

    def event(piece: str, finish: str | None = None) -> str:
        # vLLM's own spacing and key order, which a JSON round trip would not keep.
        choice = {"index": 0, "delta": {"content": piece}, "logprobs": None,
                  "finish_reason": finish}
        return "data: " + json.dumps({"id": "c1", "choices": [choice]},
                                     separators=(",", ":"), ensure_ascii=False) + "\n\n"

    sse = SSEFilter(OutputFilter())
    # Released whole as they come: none ends in what could still grow into something masked.
    plain = [event("你好，"), event("欢迎光临。"), event(" Thanks, "), event("bye. ")]
    assert [sse.rewrite(e) for e in plain] == plain
    held = sse.rewrite(event("Call 13800"))  # could be a phone number: held back
    assert json.loads(held[6:])["choices"][0]["delta"]["content"] == "Call "
    done = sse.rewrite(event("138000 now", "stop"))
    assert json.loads(done[6:])["choices"][0]["delta"]["content"] == "*********** now"
    assert sse.sent_text == "你好，欢迎光临。 Thanks, bye. Call *********** now"


@pytest.mark.parametrize("size", [1, 2, 3, 4, 6, 9])
def test_stream_masking_with_shipped_lists_and_chinese(size: int) -> None:
    from kernel.config import AppConfig
    from serving.pipeline.decide import build_engine

    output_filter = OutputFilter(build_engine(AppConfig()).matcher)
    text = ("好的，请拨打13800138000联系我们，不要说傻逼。 Then shut up, you useless machine, "
            "and call (512) 555-0199 or mail a.b@lumen.com today.")
    stream = output_filter.stream()
    pieces = [stream.feed(text[i:i + size]) for i in range(0, len(text), size)]
    assert "".join(pieces) + stream.flush() == output_filter.mask(text)
    assert sum(1 for p in pieces if p) > 5  # text still flows while being checked


def _fed(output_filter: OutputFilter, pieces: list[str]) -> tuple[list[str], str]:
    stream = output_filter.stream()
    out = [stream.feed(p) for p in pieces]
    return out, stream.flush()


def test_random_streams_mask_exactly_like_the_whole_text() -> None:
    import random

    from kernel.config import AppConfig
    from serving.pipeline.decide import build_engine

    output_filter = OutputFilter(build_engine(AppConfig()).matcher)
    rng = random.Random(20261201)
    words = ["call", "13800138000", "a.b@lumen.com", "(512) 555-0199", "idiot", "idiots",
             "shut", "up", "傻逼", "好的", "6222020200112233445", "x@y", "555", "-", ".",
             "@", "lamp", "Idiot!", "张三@qq.com", "support@lumen.com联系我们", "例子.中国"]
    for _ in range(300):
        text = "".join(rng.choice(words) + rng.choice([" ", "", ", "])
                       for _ in range(rng.randint(1, 12)))
        cuts = sorted(rng.sample(range(1, len(text)), k=min(len(text) - 1, rng.randint(0, 6))))
        pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
        out, rest = _fed(output_filter, pieces)
        assert "".join(out) + rest == output_filter.mask(text), pieces


def test_a_plain_word_is_held_only_until_the_next_piece_shows_it_is_plain() -> None:
    out, rest = _fed(OutputFilter(), ["Hello", "!", " How", " can", " I", " help", "?"])
    assert out == ["", "Hello!", " ", "How ", "can ", "I ", "help?"] and rest == ""


def test_chinese_text_leaves_as_it_is_written() -> None:
    # Chinese characters are word characters: when an e-mail's local part could be any
    # word characters, a Chinese answer was held back until each punctuation mark.
    text = "您好，退货期限是收货后三十天内，退款五个工作日到账。"
    out, rest = _fed(OutputFilter(), list(text))
    assert out == list(text) and rest == ""


def test_a_filter_with_other_patterns_holds_what_those_could_become() -> None:
    # The perf suite's baseline: the e-mail pattern before 2026-12-04 (any word characters
    # in the local part) held a Chinese sentence back until its punctuation.
    from perf.filter_suite import WORD_LOCAL_PART
    from serving.safety import PATTERNS

    output_filter = OutputFilter(patterns=[WORD_LOCAL_PART, *PATTERNS[1:]])
    out, rest = _fed(output_filter, list("您好，退货期限是三十天。"))
    assert out == ["", "", "您好，", "", "", "", "", "", "", "", "", "退货期限是三十天。"]
    # ... and masked the Chinese words around an address as part of it.
    assert rest == "" and output_filter.mask("发给张三@qq.com吧") == "*" * 12


def test_an_address_with_a_chinese_local_part_has_its_domain_masked() -> None:
    output_filter = OutputFilter()
    assert output_filter.mask("发给张三@qq.com吧") == "发给张三*******吧"
    assert output_filter.mask("邮箱support@lumen.com联系我们") == "邮箱" + "*" * 17 + "联系我们"
    assert output_filter.mask("张伟@例子.中国。") == "张伟******。"


def test_a_20000_character_run_is_held_back_boundedly() -> None:
    # Linear work: what is held back (and scanned again per piece) stays bounded, however
    # long the unbroken run; the old filter held and re-scanned the whole run.
    stream = OutputFilter().stream()
    held, sent = 0, []
    for i in range(20_000):
        sent.append(stream.feed("ab7"[i % 3]))
        held = max(held, len(stream._pending))
    sent.append(stream.flush())
    assert held <= 64 + 1 and len("".join(sent)) == 20_000


def test_the_shortcut_for_text_without_digits_or_at_signs_agrees_with_the_patterns() -> None:
    # `OutputFilter()` skips the patterns' scans for text with no digit, "@", "+" or "(";
    # the same patterns passed explicitly always scan. Both must hold and mask alike.
    import random

    from serving.safety import PATTERNS

    fast, scanning = OutputFilter(), OutputFilter(patterns=list(PATTERNS))
    common = list("abcXYZ ._%-,!?\n") + list("中文问题")
    rare = [*"0123456789@+(", "١", "５"]  # digits of other scripts are `\d` too
    rng = random.Random(20261204)
    plain = 0
    for _ in range(20_000):
        text = "x" * rng.randrange(60, 70) if rng.random() < 0.2 else ""
        text += "".join(rng.choice(rare) if rng.random() < 0.03 else rng.choice(common)
                        for _ in range(rng.randrange(1, 90)))
        first = rng.randrange(0, len(text) + 1)
        assert fast.hold_from(text, first) == scanning.hold_from(text, first), (text, first)
        assert fast.spans(text) == scanning.spans(text), text
        plain += fast.plain(text)
    assert 0 < plain < 20_000  # both branches were taken
    assert not scanning.plain("hello")


def test_a_stream_is_cut_short_once_the_guard_stopped_and_every_choice_ended() -> None:
    import json

    from serving.safety import FactCheck, SSEFilter

    def event(index: int, text: str, finish: str | None = None) -> str:
        choice = {"index": index, "delta": {"content": text}, "finish_reason": finish}
        return f"data: {json.dumps({'choices': [choice]})}\n\n"

    sse = SSEFilter(OutputFilter(), FactCheck(("Hello",), " …"), choices=2)
    sse.rewrite(event(0, "It ships in 3 days "))
    sse.rewrite(event(1, "Hello "))
    assert not sse.cut_short  # choice 0 stopped, choice 1 still going
    sse.rewrite(event(1, "there", "stop"))
    assert sse.cut_short
    plain = SSEFilter(OutputFilter(), FactCheck(("Hello",), " …"))
    plain.rewrite(event(0, "Hello there", "stop"))
    assert not plain.cut_short  # ended, nothing stopped: the engine's own end follows
