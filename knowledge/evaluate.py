"""`onlycs kb eval`: the held-out questions through a running appliance (the real serving
path), scored against the knowledge base.

- right: the reply holds the entry's key terms in the question's language (its numbers; for
  an answer without numbers, its colour words or last words);
- wrong fact: the reply states a number or e-mail that the knowledge base does not state of
  that subject: one in no entry about the question's product or city (nor in the shop-wide
  entries, nor the question): an invented price, or another lamp's; or a value word (a
  colour, a city, a product's name: `guard.value_words`) in none of those entries, even one
  the question said ("Is the Nova available in black?" "Yes, in black."). For a question
  the knowledge base cannot answer, the subject is whatever product or city it names: "How
  do I reset the Pixel?" answered with the Pixel's price states no wrong fact (nor an
  answer);
- abstained: the route header says mode=abstain, or the reply is the abstain reply (the
  fact guard put it in place of a grounded answer);
- offered: mode=suggest, or a grounded answer the fact guard replaced by that same reply: a
  few entries listed and a colleague offered. It counts as
  right when the asked entry's key terms are in it (reported apart: `right_offered`), and
  for an unanswerable question as declined (`declined`), never as abstained.
"""

from __future__ import annotations

import re
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Collection
from typing import Any

import httpx

from knowledge.entries import Entry, KnowledgeBase
from knowledge.guard import check, facts, unsupported_values
from knowledge.lumen import COLORS, COLORS_ZH
from knowledge.mentions import MentionIndex

ROUTE_HEADER = "x-onlycs-route"
KNOWLEDGE_HEADER = "x-onlycs-knowledge"


def key_terms(entry: Entry, lang: str) -> list[str]:
    answer = entry.answer(lang)  # type: ignore[arg-type]
    numbers = sorted(f for f in facts(answer) if "@" not in f)
    if numbers:
        return numbers
    emails = sorted(f for f in facts(answer) if "@" in f)
    if emails:
        return emails
    colors = [c for c in (COLORS_ZH.values() if lang == "zh" else COLORS) if c in answer]
    if colors:
        return colors
    return [w.lower() for w in re.findall(r"[A-Za-z]+", answer)[-3:]] or [answer[-4:]]


def contains(reply: str, term: str) -> bool:
    return term.lower() in reply.lower() or term in facts(reply)


def true_of(kb: KnowledgeBase, names: set[str]) -> list[str]:
    """Every answer the knowledge base states about these names, and the shop-wide ones."""
    return [a for e in kb.entries if not e.mentions or names & set(e.mentions)
            for a in e.answers.values()]


def route_mode(header: str) -> str:
    match = re.search(r"mode=(\w+)", header)
    return match.group(1) if match else "open"


def evaluate(client: httpx.Client, kb: KnowledgeBase, questions: list[dict[str, Any]], *,
             model: str = "auto", grounding: bool = True, max_tokens: int = 64,
             abstain_replies: Collection[str] = (), offer_openings: Collection[str] = (),
             progress: Callable[[str], None] = print) -> dict[str, Any]:
    """`offer_openings`: how the `suggest` replies begin (the fact guard puts the same reply
    in place of a grounded answer it replaces, `mode=grounded`)."""
    by_lang: dict[str, Counter] = defaultdict(Counter)
    modes: Counter = Counter()
    latency: dict[str, list[float]] = defaultdict(list)
    details: list[dict[str, Any]] = []
    headers = {} if grounding else {KNOWLEDGE_HEADER: "off"}
    names = MentionIndex(kb.entries)
    for number, row in enumerate(questions, start=1):
        started = time.perf_counter()
        response = client.post("/v1/chat/completions", headers=headers, json={
            "model": model, "max_tokens": max_tokens, "temperature": 0,
            "messages": [{"role": "user", "content": row["question"]}]})
        response.raise_for_status()
        latency_s = time.perf_counter() - started
        reply = response.json()["choices"][0]["message"]["content"] or ""
        mode = route_mode(response.headers.get(ROUTE_HEADER, ""))
        abstained = mode == "abstain" or reply.strip() in abstain_replies
        offered = mode == "suggest" or any(o and reply.startswith(o) for o in offer_openings)
        modes[mode] += 1
        latency[mode].append(latency_s)
        tally = by_lang[row["lang"]]
        entry = kb.by_id.get(row["entry"]) if row["entry"] else None
        right = False
        if entry is not None:
            tally["answerable"] += 1
            right = all(contains(reply, t) for t in key_terms(entry, row["lang"]))
            tally["right"] += right
            tally["right_offered"] += right and offered
            known = [row["question"], *true_of(kb, set(entry.mentions))]
        else:
            tally["unanswerable"] += 1
            tally["abstained"] += abstained
            tally["declined"] += abstained or offered
            # What the knowledge base says of a name the question says is no wrong fact,
            # though it does not answer ("How do I reset the Pixel?" "It costs 12.90 euros.")
            known = [row["question"], *true_of(kb, set(names.find(row["question"])))]
        wrong = not check(reply, known).passed or bool(
            unsupported_values(reply, known[1:], kb.value_words[row["lang"]]))
        tally["wrong_fact"] += wrong
        details.append({"question": row["question"], "entry": row["entry"], "mode": mode,
                        "abstained": abstained, "right": right, "wrong_fact": wrong,
                        "reply": reply})
        tally["abstained_answerable"] += entry is not None and abstained
        if number % 25 == 0:
            progress(f"{number}/{len(questions)} questions")
    return summary(by_lang, modes, latency) | {"details": details}


def _ratio(a: int, b: int) -> float | None:
    return round(a / b, 4) if b else None


def summary(by_lang: dict[str, Counter], modes: Counter,
            latency: dict[str, list[float]]) -> dict[str, Any]:
    total = sum(by_lang.values(), Counter())
    report: dict[str, Any] = {}
    for name, t in [*sorted(by_lang.items()), ("all", total)]:
        answers = t["answerable"] + t["unanswerable"]
        abstained = t["abstained"] + t["abstained_answerable"]
        report[name] = {
            "answerable": t["answerable"], "unanswerable": t["unanswerable"],
            "accuracy": _ratio(t["right"], t["answerable"]),
            "right_offered": _ratio(t["right_offered"], t["answerable"]),
            "wrong_fact_rate": _ratio(t["wrong_fact"], answers),
            "abstention_recall": _ratio(t["abstained"], t["unanswerable"]),
            "abstention_precision": _ratio(t["abstained"], abstained),
            "declined": _ratio(t["declined"], t["unanswerable"]),
        }
    count = sum(modes.values())
    report["modes"] = {m: _ratio(n, count) for m, n in sorted(modes.items())}
    report["latency_p50_s"] = {m: round(sorted(v)[len(v) // 2], 4)
                               for m, v in sorted(latency.items())}
    return report
