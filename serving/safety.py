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
# Characters that can continue a phone/card/ID number or an e-mail address.
_RUN = set("@._+-()")


class OutputFilter:
    def __init__(self, matcher: SensitiveMatcher | None = None):
        self.matcher = matcher
        terms = matcher.terms(("mask", "block")) if matcher is not None else []
        # A masked term of several words may be cut between them; a CJK term has no spaces.
        self.extra_words = max((len(t.split()) for t in terms), default=1) - 1
        self.cjk_hold = max((len(t) for t in terms if not t.isascii()), default=0)

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
        text = self._pending
        cut = self._hold_from(text)
        # Never cut inside a match: the rest alone would no longer match.
        spans = self._filter.spans(text)
        moved = True
        while moved:
            moved = False
            for start, end in spans:
                if start < cut < end:
                    cut, moved = start, True
        ready = self._filter.mask(text)[:cut]
        self._pending = text[cut:]
        return ready

    def _hold_from(self, text: str) -> int:
        """Where the tail that could still grow into a masked pattern begins."""
        i = len(text)
        while i > 0:
            ch = text[i - 1]
            if (ch.isascii() and ch.isalnum()) or ch in _RUN:
                i -= 1
            elif ch == " " and i >= 2 and (text[i - 2].isdigit() or text[i - 2] == ")"):
                i -= 1  # "555 0199", "(512) 555": numbers may contain spaces
            else:
                break
        for _ in range(self._filter.extra_words):
            i = text.rfind(" ", 0, max(0, i - 1)) + 1
        if self._filter.cjk_hold and not text[i - 1:i].isascii():
            i = min(i, max(0, len(text) - self._filter.cjk_hold))
        return i

    def flush(self) -> str:
        rest, self._pending = self._filter.mask(self._pending), ""
        return rest


class SSEFilter:
    """Rewrites a stream's SSE events so each choice's text goes through a StreamMasker."""

    def __init__(self, output_filter: OutputFilter):
        self._filter = output_filter
        self._maskers: dict[int, StreamMasker] = {}
        self._sent: list[str] = []  # choice 0's text as it went out: what the store keeps

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
            if choice.get("index", 0) == 0:
                self._sent.append(text)
        return f"data: {json.dumps(event, ensure_ascii=False)}\n\n"

    @property
    def sent_text(self) -> str:
        return "".join(self._sent)


def mask_response(output_filter: OutputFilter, body: dict) -> dict:
    for choice in body.get("choices") or []:
        message = choice.get("message")
        if message and isinstance(message.get("content"), str):
            message["content"] = output_filter.mask(message["content"])
        if isinstance(choice.get("text"), str):
            choice["text"] = output_filter.mask(choice["text"])
    return body
