from __future__ import annotations

from typing import Any

from tokenizers import Tokenizer, models, pre_tokenizers

from serving.reply_tokens import CACHED_CHARS, ReplyTokens


class Counting:
    """A real (word-level) tokenizer, its calls counted."""

    def __init__(self) -> None:
        vocab = {"[UNK]": 0, "call": 1, "us": 2, "at": 3, "400": 4}
        self.inner = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
        self.inner.pre_tokenizer = pre_tokenizers.Whitespace()
        self.calls = 0

    def encode(self, text: str, **kwargs: Any) -> Any:
        self.calls += 1
        return self.inner.encode(text, **kwargs)


def test_a_repeated_text_is_counted_once_and_a_long_one_every_time() -> None:
    tokenizer = Counting()
    counts = ReplyTokens(tokenizer)  # type: ignore[arg-type]
    assert [counts.count("call us at 400 now") for _ in range(3)] == [5, 5, 5]
    assert tokenizer.calls == 1
    long = "call " * (CACHED_CHARS // 5 + 1)
    assert counts.count(long) == counts.count(long) == CACHED_CHARS // 5 + 1
    assert tokenizer.calls == 3
    assert counts.count("") == 0
