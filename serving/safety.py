"""Output safety filter: personal data and masked words never leave in a model's answer.

Streams are filtered too. The last few characters of what the model produced are
held back until the next chunk shows whether they start a phone number or a
masked word, so a pattern split across two chunks is masked like any other.
"""

from __future__ import annotations

import json
import re

from serving.router.sensitive import SensitiveMatcher

PII = re.compile("|".join([
    r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+",             # email
    r"(?<!\d)\d{17}[\dXx](?!\d)",                # Chinese resident ID card
    r"(?<!\d)\d{16,19}(?!\d)",                   # bank card
    r"(?<!\d)1[3-9]\d{9}(?!\d)",                 # Chinese mobile
    r"(?<!\d)(?:\+?\d{1,3}[ -]?)?(?:\(?\d{3}\)?[ -]?)\d{3}[ -]?\d{4}(?!\d)",  # phone
]))
HOLD_BACK = 48  # longer than any pattern above or any masked word


class OutputFilter:
    def __init__(self, matcher: SensitiveMatcher | None = None):
        self.matcher = matcher

    def spans(self, text: str) -> list[tuple[int, int]]:
        found = [m.span() for m in PII.finditer(text)]
        if self.matcher is not None:
            found += [(h.start, h.end) for h in self.matcher.find(text)
                      if h.action in ("mask", "block")]
        return found

    def mask(self, text: str) -> str:
        chars = list(text)
        for start, end in self.spans(text):
            chars[start:end] = "*" * (end - start)
        return "".join(chars)

    def stream(self) -> StreamMasker:
        return StreamMasker(self)


class StreamMasker:
    """Feed model text in pieces; get back text safe to send now, then the rest."""

    def __init__(self, output_filter: OutputFilter):
        self._filter = output_filter
        self._pending = ""

    def feed(self, piece: str) -> str:
        self._pending += piece
        if len(self._pending) <= HOLD_BACK:
            return ""
        spans = self._filter.spans(self._pending)
        cut = len(self._pending) - HOLD_BACK
        # Never cut inside a match (the rest would no longer match), nor inside a run of
        # letters or digits that may still grow into one.
        moved = True
        while moved:
            moved = False
            while cut > 0 and self._pending[cut - 1].isalnum():
                cut, moved = cut - 1, True
            for start, end in spans:
                if start < cut < end:
                    cut, moved = start, True
        ready = self._filter.mask(self._pending)[:cut]
        self._pending = self._pending[cut:]
        return ready

    def flush(self) -> str:
        rest, self._pending = self._filter.mask(self._pending), ""
        return rest


class SSEFilter:
    """Rewrites a stream's SSE events so each choice's text goes through a StreamMasker."""

    def __init__(self, output_filter: OutputFilter):
        self._filter = output_filter
        self._maskers: dict[int, StreamMasker] = {}

    def rewrite(self, chunk: str) -> str:
        if not chunk.startswith("data: {"):
            return chunk
        event = json.loads(chunk[6:])
        for choice in event.get("choices") or []:
            masker = self._maskers.setdefault(choice.get("index", 0), self._filter.stream())
            holder, key = ((choice["delta"], "content") if "delta" in choice
                           else (choice, "text"))
            if holder is None:
                continue
            text = masker.feed(holder.get(key) or "")
            if choice.get("finish_reason") is not None:
                text += masker.flush()
            if holder.get(key) is not None or text:
                holder[key] = text
        return f"data: {json.dumps(event, ensure_ascii=False)}\n\n"


def mask_response(output_filter: OutputFilter, body: dict) -> dict:
    for choice in body.get("choices") or []:
        message = choice.get("message")
        if message and isinstance(message.get("content"), str):
            message["content"] = output_filter.mask(message["content"])
        if isinstance(choice.get("text"), str):
            choice["text"] = output_filter.mask(choice["text"])
    return body
