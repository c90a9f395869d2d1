"""Output safety filter: personal data and masked words never leave in a model's answer.

Streams are filtered too, in time linear in the output: only the tail that is still the
beginning of something maskable is held back (a partial match of a personal-data pattern,
found with the `regex` package's partial matching, or the beginning of a masked word), and
released the moment the next piece shows it is not; everything before it goes out at once.
So a pattern split across two chunks is masked like any other, and a text with nothing to
mask is delayed by at most the word being written.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import regex

from knowledge.guard import StreamFactGuard, known_facts
from serving.router.sensitive import SensitiveMatcher, is_word_char

# Bounded lengths (an e-mail's local part is at most 64 characters, a domain label 63) keep
# what a stream may hold back, and the work per piece, bounded. The local part is ASCII (as
# the addresses of the mail providers customers use are): with `\w` there, every run of
# Chinese text could still become one, and a Chinese answer left phrase by phrase, at each
# punctuation mark. An address with a non-ASCII local part has its "@" and domain masked.
# A domain label is ASCII or Chinese, not a mix: "support@lumen.com联系我们" ends at "com".
LABEL = r"(?:[A-Za-z0-9-]{1,63}|\p{Han}{1,63})"
PATTERNS = [regex.compile(p) for p in (
    rf"(?:[A-Za-z0-9._%+-]{{1,64}})?@{LABEL}(?:\.{LABEL}){{1,8}}",  # email
    r"(?<!\d)\d{17}[\dXx](?!\d)",                           # Chinese resident ID card
    r"(?<!\d)\d{16,19}(?!\d)",                               # bank card
    r"(?<!\d)1[3-9]\d{9}(?!\d)",                             # Chinese mobile
    r"(?<!\d)(?:\+?\d{1,3}[ -]?)?(?:\(?\d{3}\)?[ -]?)\d{3}[ -]?\d{4}(?!\d)",  # phone
)]
PII = regex.compile("|".join(p.pattern for p in PATTERNS))
# Each pattern above but the e-mail's local part needs one of these to match or to begin
# matching: a digit (of any script, as `\d`), "@", or a phone number's "+" or "(". Most
# pieces of an answer have none, and then only a trailing run of local-part characters can
# still become personal data; that is found without the patterns' scans (which were most
# of the filter's 15 % of the router's samples at 8 streams; README, Performance).
TRIGGER = re.compile(r"[\d@+(]")
LOCAL_TAIL = re.compile(r"[A-Za-z0-9._%+-]{1,64}\Z")
CONTEXT = 1  # characters of released text the patterns look behind at (`(?<!\d)`, words)


class OutputFilter:
    def __init__(self, matcher: SensitiveMatcher | None = None,
                 patterns: list[regex.Pattern] | None = None):
        self.matcher = matcher
        self.shipped = patterns is None  # TRIGGER and LOCAL_TAIL describe these
        self.patterns = PATTERNS if patterns is None else patterns
        self.pii = PII if patterns is None else regex.compile(
            "|".join(p.pattern for p in patterns))
        terms = matcher.terms(("mask", "block")) if matcher is not None else []
        # Every beginning of a masked term, the whole term too (a word at the very end may
        # still grow into another word): a tail that is one is held until the next piece.
        self.term_prefixes = {t[:i] for t in terms for i in range(1, len(t) + 1)}
        self.longest_term = max((len(t) for t in terms), default=0)

    def plain(self, text: str) -> bool:
        """No personal-data pattern matches in `text`, and none but an e-mail address can
        still begin in it."""
        return self.shipped and TRIGGER.search(text) is None

    def spans(self, text: str) -> list[tuple[int, int]]:
        found = [] if self.plain(text) else [m.span() for m in self.pii.finditer(text)]
        if self.matcher is not None:
            found += [(h.start, h.end) for h in self.matcher.find(text)
                      if h.action in ("mask", "block")]
        return found

    def mask(self, text: str, spans: list[tuple[int, int]] | None = None) -> str:
        chars = list(text)
        for start, end in self.spans(text) if spans is None else spans:
            chars[start:end] = "*" * (end - start)
        return "".join(chars)

    def stream(self) -> StreamMasker:
        return StreamMasker(self)

    def hold_from(self, text: str, first: int) -> int:
        """Where the tail of `text` that may still become maskable begins (>= `first`)."""
        end = hold = len(text)
        if self.plain(text):
            local = LOCAL_TAIL.search(text, first)
            hold = end if local is None else local.start()
        else:
            # Pattern by pattern: a search for partial matches prefers a later complete
            # match of the alternation to an earlier partial one of another pattern.
            for pattern in self.patterns:
                for match in pattern.finditer(text, pos=first, partial=True):
                    if match.end() == end and match.start() < end:  # partial, or growing
                        hold = min(hold, match.start())
        lowered = text.lower()
        for size in range(min(self.longest_term, end - first), 0, -1):
            start = end - size
            tail = lowered[start:]
            if tail in self.term_prefixes and not (
                    tail[0].isascii() and start > 0 and is_word_char(lowered[start - 1])):
                hold = min(hold, start)
                break
        return hold


class StreamMasker:
    """Feed model text in pieces; get back text safe to send now, then the rest."""

    def __init__(self, output_filter: OutputFilter):
        self._filter = output_filter
        self._context = ""  # the last released characters, for look-behind only
        self._pending = ""

    def feed(self, piece: str) -> str:
        text = self._context + self._pending + piece
        first = len(self._context)
        masked = self._filter.spans(text)  # what whole-text masking masks, computed once
        spans = masked if self._filter.plain(text) else masked + [
            m.span() for p in self._filter.patterns for m in p.finditer(text)]
        cut = self._filter.hold_from(text, first)
        # Never cut inside a match: the rest alone would no longer match.
        moved = True
        while moved:
            moved = False
            for start, end in spans:
                if start < cut < end:
                    cut, moved = start, True
        cut = max(cut, first)
        ready = self._filter.mask(text, masked)[first:cut]
        self._context = text[max(0, cut - CONTEXT):cut]
        self._pending = text[cut:]
        return ready

    def flush(self) -> str:
        text = self._context + self._pending
        rest = self._filter.mask(text)[len(self._context):]
        self._context, self._pending = "", ""
        return rest


@dataclass(frozen=True)
class FactCheck:
    """The fact guard for a tier's answer that is not grounded: each choice's numbers must
    be in `sources` (the conversation, the entries retrieval found); the first that is not
    ends the choice's text, and `stop_text` follows it."""

    sources: tuple[str, ...]
    stop_text: str
    on_stop: Callable[[], None] = lambda: None

    @cached_property
    def known(self) -> frozenset[str]:
        """The facts the sources state, found once for every choice of the answer."""
        return frozenset(known_facts(self.sources))

    def text(self, text: str) -> str:
        """A whole answer, as the stream would have sent it."""
        guard = StreamFactGuard(self.known)
        checked = guard.feed(text)
        checked += "" if guard.stopped else guard.flush()
        if not guard.stopped:
            return checked
        self.on_stop()
        return checked + self.stop_text


class SSEFilter:
    """Rewrites a stream's SSE events so each choice's text goes through a StreamMasker,
    then the fact guard when there is one (a stopped choice's later events are dropped)."""

    def __init__(self, output_filter: OutputFilter, facts: FactCheck | None = None,
                 choices: int = 1, hold_usage: bool = False):
        """`hold_usage`: the engine was asked for usage on every event (the client asked
        only for the last): each event's is taken off and kept for `usage_event`."""
        self._filter = output_filter
        self._facts = facts
        self._choices = choices
        self._hold_usage = hold_usage
        self._prompt_tokens = 0
        self._completion_tokens: dict[int, int] = {}  # per choice, as the engine counts
        self._head: dict = {}  # id, created, model of the engine's events
        self._ended: set[int] = set()  # choices finished or stopped
        self._maskers: dict[int, StreamMasker] = {}
        self._guards: dict[int, StreamFactGuard] = {}
        self._sent: list[str] = []  # choice 0's text as it went out: what the store keeps
        self._changed = False  # whether the event being rewritten differs from the engine's

    def rewrite(self, chunk: str) -> str:
        """The event to send instead; "" when nothing of it is left to send."""
        if not chunk.startswith("data: {"):
            return chunk
        event = json.loads(chunk[6:])
        choices = event.get("choices") or []
        self._changed = False
        if self._hold_usage and choices and event.get("usage"):
            self._keep_usage(event, choices)
            self._changed = True
        kept = [c for c in choices if self._rewrite_choice(c)]
        if len(kept) < len(choices):
            if not kept and not event.get("usage"):
                return ""
            event["choices"] = kept
        elif not self._changed:
            return chunk  # most events of a plain answer: sent as the engine wrote them
        return f"data: {json.dumps(event, ensure_ascii=False)}\n\n"

    def _rewrite_choice(self, choice: dict) -> bool:
        index = choice.get("index", 0)
        guard = self._guard(index)
        if guard is not None and guard.stopped:
            return False
        masker = self._maskers.setdefault(index, self._filter.stream())
        holder, key = (choice["delta"], "content") if "delta" in choice else (choice, "text")
        if holder is None:
            return True
        finished = choice.get("finish_reason") is not None
        if finished:
            self._ended.add(index)
        text = masker.feed(holder.get(key) or "")
        if finished:
            text += masker.flush()
        if guard is not None:
            assert self._facts is not None
            text = guard.feed(text)
            if finished and not guard.stopped:
                text += guard.flush()
            if guard.stopped:
                text += self._facts.stop_text
                choice["finish_reason"] = "stop"
                self._ended.add(index)
                self._changed = True
                self._facts.on_stop()
        if holder.get(key) is not None or text:
            self._changed = self._changed or holder.get(key) != text
            holder[key] = text
        if index == 0:
            self._sent.append(text)
        return True

    def _guard(self, index: int) -> StreamFactGuard | None:
        if self._facts is None:
            return None
        if index not in self._guards:
            self._guards[index] = StreamFactGuard(self._facts.known)
        return self._guards[index]

    def _keep_usage(self, event: dict, choices: list[dict]) -> None:
        usage = event.pop("usage")
        self._prompt_tokens = usage.get("prompt_tokens") or 0
        for choice in choices:  # vLLM counts each choice's tokens on its own events
            self._completion_tokens[choice.get("index", 0)] = usage.get(
                "completion_tokens") or 0
        self._head = {k: event[k] for k in ("id", "created", "model") if k in event}

    def usage_event(self) -> str | None:
        """The usage event for the tokens the engine generated so far, as the engine's own
        last event would say it; None when no event carried usage."""
        if not self._hold_usage or not self._completion_tokens:
            return None
        completion = sum(self._completion_tokens.values())
        usage = {"prompt_tokens": self._prompt_tokens, "completion_tokens": completion,
                 "total_tokens": self._prompt_tokens + completion}
        event = {"id": self._head.get("id"), "object": "chat.completion.chunk",
                 "created": self._head.get("created"), "model": self._head.get("model"),
                 "choices": [], "usage": usage}
        return f"data: {json.dumps(event)}\n\n"

    @property
    def sent_text(self) -> str:
        return "".join(self._sent)

    @property
    def cut_short(self) -> bool:
        """The fact guard stopped a choice and every choice has ended: what the engine
        writes from here would all be dropped."""
        return (len(self._ended) >= self._choices
                and any(g.stopped for g in self._guards.values()))


def mask_response(output_filter: OutputFilter, body: dict,
                  facts: FactCheck | None = None) -> dict:
    for choice in body.get("choices") or []:
        message = choice.get("message")
        holder, key = (message, "content") if message else (choice, "text")
        if not isinstance(holder.get(key), str):
            continue
        text = output_filter.mask(holder[key])
        if facts is not None and (checked := facts.text(text)) != text:
            text = checked
            choice["finish_reason"] = "stop"
        holder[key] = text
    return body
