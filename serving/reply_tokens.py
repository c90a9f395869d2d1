"""Token counts for the replies the appliance writes itself (kb, abstain, refusal), so their
`usage` says how long they are, as an engine's would, instead of zero."""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

from tokenizers import Tokenizer

from kernel.config import AppConfig
from models.registry import ModelNotPrepared, model_dir
from serving.protocol import content_text

logger = logging.getLogger(__name__)

# Prompts longer than this are counted in a thread: a megabyte of messages takes the
# tokenizer tens of milliseconds, which the event loop spends on other connections instead.
INLINE_CHARS = 16_384
# Where the tier's model (or its tokenizer.json) is not on this node, and for the request
# budget (no tokenizer there): about four characters to a token.
CHARS_PER_TOKEN = 4
# The appliance's own replies and its customers' questions repeat all day: counts of texts up
# to this long are kept (a few thousand, a few hundred kilobytes at most).
CACHED_CHARS = 2_000
CACHED_TEXTS = 4_096


def estimated_tokens(chars: int) -> int:
    return chars // CHARS_PER_TOKEN + 1


class ReplyTokens:
    """Counts with the tokenizer of the tier that would otherwise have answered (the one
    adapters load into), over the messages' text and the reply: no chat template, since no
    engine read the prompt."""

    def __init__(self, tokenizer: Tokenizer | None):
        self.tokenizer = tokenizer
        self._cached = functools.lru_cache(maxsize=CACHED_TEXTS)(self._encoded_length)

    @classmethod
    def for_config(cls, config: AppConfig) -> ReplyTokens:
        tier = config.tiers.get(config.lora.tier) or next(iter(config.tiers.values()))
        try:
            path = model_dir(config, tier) / "tokenizer.json"
        except ModelNotPrepared:
            path = None
        if path is None or not path.is_file():
            logger.warning("no tokenizer.json for the %s tier here: the appliance's own "
                           "replies report estimated token counts", config.lora.tier)
            return cls(None)
        return cls(Tokenizer.from_file(str(path)))

    def count(self, text: str) -> int:
        if not text:
            return 0
        if self.tokenizer is None:
            return estimated_tokens(len(text))
        if len(text) <= CACHED_CHARS:
            return self._cached(text)
        return self._encoded_length(text)

    def _encoded_length(self, text: str) -> int:
        assert self.tokenizer is not None
        return len(self.tokenizer.encode(text, add_special_tokens=False).ids)

    async def usage(self, req: Any, reply: str) -> dict[str, int]:
        if hasattr(req, "messages"):
            texts = [content_text(m.content) for m in req.messages]
        else:
            prompts = req.prompt if isinstance(req.prompt, list) else [req.prompt]
            texts = [p for p in prompts if isinstance(p, str)]
        if sum(map(len, texts)) > INLINE_CHARS:
            prompt = await asyncio.to_thread(lambda: sum(map(self.count, texts)))
        else:
            prompt = sum(map(self.count, texts))
        completion = self.count(reply)
        return {"prompt_tokens": prompt, "completion_tokens": completion,
                "total_tokens": prompt + completion}
