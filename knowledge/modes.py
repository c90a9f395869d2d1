"""Which answer mode a question gets, from retrieval confidence (thresholds in
`[knowledge]` of the config), and why, in words `router explain` and `kb explain` print.

- kb: one entry matches confidently and unambiguously; its verified answer is the reply.
- suggest: relevant entries about no named product or city, none confidently alone; the
  appliance offers them (each entry's question and answer) with the hand-off, no engine.
  Measured on 2026-12-04: given such entries, the bundled 135M model stated the asked fact
  in few of its answers and the fact guard put the abstain reply in place of most, while
  the asked entry was among the offered ones in nearly all (README, Knowledge base).
- grounded: relevant entries, none confidently alone, about a named subject (or asked by a
  complaint or hand-off, or with `suggest` off); they ground the tier's prompt and the fact
  guard checks the answer.
- abstain: a factual question and no relevant entry; say so and offer a colleague.
- open: not a question about the shop's facts; the tiers answer as before.

Entries with keywords (`knowledge.keywords`) are judged by them too, for questions about no
named product or city: relevant entries none of whose keywords (nor a name only its answer
states, "Shanghai" of the store's) the question says are not what it asks ("Do you offer a
military discount?", near the free-shipping entry in meaning): abstained. Below the
relevance bar, the one entry whose keywords it says, if near enough (`keyword_similarity`),
is offered ("phone number pls", 0.861 from the phone entry).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from knowledge.aspects import judged
from knowledge.retrieval import Hit

Mode = Literal["kb", "suggest", "grounded", "abstain", "open"]
MODES: tuple[Mode, ...] = ("kb", "suggest", "grounded", "abstain", "open")
# Router intents that are no question for the knowledge base: greetings and insults get the
# tiers' small talk, and an order's status lives in the order system, not in shop facts.
SMALL_TALK_INTENTS = frozenset({"chitchat", "abuse", "order_status"})
# Intents the large tier handles; facts may still ground it, but never a verbatim answer.
CONVERSATION_INTENTS = frozenset({"complaint", "multi_step", "human_handoff"})
# A message shaped as a question: a question mark, an English question word first, or a
# Chinese question particle or word.
_QUESTION = re.compile(
    r"[?？]|^\s*(what|which|how|when|where|who|whom|whose|why|is|are|was|were|do|does|"
    r"did|can|could|will|would|should)\b|[吗呢几哪谁]|多少|什么|怎样|怎么|为什么|是否|能否|"
    r"有没有", re.IGNORECASE)


def asks(text: str) -> bool:
    """Whether a message is shaped as a question (what an unsure intent leaves to go by)."""
    return _QUESTION.search(text) is not None


# How much closer in meaning another entry may be than the one stating a name the question
# says, for that one still to be the answer.
NAME_SLACK = 0.02


@dataclass(frozen=True)
class Thresholds:
    kb_similarity: float = 0.92  # dense cosine of the best entry, for a kb answer
    kb_margin: float = 0.005  # fused-score lead over the next entry on the same subject
    grounded_similarity: float = 0.88  # below this nothing is relevant
    grounded_entries: int = 3
    suggest: bool = True  # shop-wide, not decisive: offer the entries instead of generating
    keyword_similarity: float = 0.83  # below the bar, an entry whose keywords are said


@dataclass(frozen=True)
class ModeChoice:
    mode: Mode
    reason: str
    entries: tuple[Hit, ...] = ()  # kb: the one entry; grounded: the prompt's entries

    @property
    def best(self) -> Hit | None:
        return self.entries[0] if self.entries else None


def choose(hits: list[Hit], intent: str | None, limits: Thresholds, *,
           sure: bool = True, question: bool = True,
           asked: frozenset[str] | None = None, strangers: Sequence[str] = (),
           destinations: Sequence[str] = ()) -> ModeChoice:
    """The answer mode for a question's ranked entries (`_choose`). Whatever entry it
    answers or offers from, not one that names other places or means than the ones the
    question names (`knowledge.mentions.StrangerNames`): "可以用云闪付吗？" was offered the
    payment entry for its keyword 付, though the entry ranked first by meaning was another."""
    shipping = bool(destinations) and "delivery" in (asked or ())
    choice = _choose(hits, intent, limits, sure=sure, question=question, asked=asked,
                     strangers=strangers, shipping=shipping)
    best = choice.best
    if (strangers and best is not None and choice.mode in ("kb", "suggest")
            and not best.entry.mentions and (best.names or shipping)
            and (intent if sure else None) not in _AS_IT_WAS):
        return _names_strangers(strangers, best, shipping)
    return choice


# Intents a name the knowledge base does not hold leaves as they are: small talk, abuse and
# complaints or hand-offs (which reach the large tier).
_AS_IT_WAS = ("chitchat", "abuse", *CONVERSATION_INTENTS)


def _names_strangers(strangers: Sequence[str], hit: Hit, shipping: bool) -> ModeChoice:
    return ModeChoice("abstain", f"the question names {', '.join(strangers)}, which the "
                      "knowledge base nowhere writes" + (
                          "" if shipping else f", and {hit.entry.id} names another"))


def _choose(hits: list[Hit], intent: str | None, limits: Thresholds, *, sure: bool,
            question: bool, asked: frozenset[str] | None, strangers: Sequence[str],
            shipping: bool) -> ModeChoice:
    """`sure`: the intent classifier was sure of `intent`. An unsure reading ("Nova 床头灯有什么
    配色？" read as a hand-off at 17 %) neither stops a confident entry's answer nor makes a
    question small talk. When nothing is relevant, a sure intent decides; an unsure one
    decides only for a message that is no question (`question`, see `asks`): a question
    nobody knows the answer to ("I live in Reykjavik, when would my parcel arrive?", read
    as order status at under 30 %) is abstained, never handed to a tier that would make an
    answer up."""
    said = intent if sure else None
    allowed = [h for h in hits if h.eligible]
    top = allowed[0] if allowed else None
    subject = top is not None and bool(top.entry.mentions)
    stranger = max((h.score for h in hits if not h.eligible), default=0.0)
    if top is not None and not subject and not top.stated and stranger >= top.score and (
            said not in _AS_IT_WAS):
        # The question reads most like an entry about a product or city it does not name:
        # "how much is the Zephyr desk?", "delivery to Cairo?". We do not know that one,
        # even when the intent classifier reads "ship to Nairobi?" as an order question.
        # Complaints and hand-offs still reach the large tier. (Not when the best entry
        # states a name the question says: that is what the question is about.)
        return ModeChoice("abstain", f"best match is about another subject ({stranger:.3f} "
                          f">= {top.score:.3f}): the question names something the knowledge "
                          "base does not hold")
    if (strangers and top is not None and not subject and (top.names or shipping)
            and said not in _AS_IT_WAS):
        # "Do you have a store in Paris?": the store entry names Shanghai, and the
        # knowledge base nowhere writes Paris (`knowledge.mentions.StrangerNames`). Not
        # for an entry that names nothing: "I live in Leeds and my lamp arrived broken"
        # is the warranty claim's wherever one lives. But a parcel's way to a place the
        # knowledge base never writes ("deliver to Singapore, and how fast?") is not the
        # express entry's "next business day".
        return _names_strangers(strangers, top, shipping)
    if said in SMALL_TALK_INTENTS and not _confident(allowed, limits):
        # A question that says one near entry's keywords asks its fact, however the intent
        # classifier read it: "Who can I phone if my order is late?" (order status) was
        # answered by a tier, which has no phone number to give.
        hit = _said_alone(allowed, limits) if question else None
        if hit is not None:
            return _offer_said(hit, f"intent {said}, but a question", limits)
        return ModeChoice("open", f"intent {said}: no fact question")
    allowed = _closest_first(allowed, limits)
    top = allowed[0] if allowed else None
    unsure_question = not sure and question
    if top is None:
        return _no_answer(intent, "no entry in the knowledge base", unsure_question)
    wide = next((h for h in allowed if not h.entry.mentions), None) if subject else None
    if (wide is not None and wide.dense > top.dense
            and wide.dense >= limits.grounded_similarity):
        return _wider(top, wide, allowed, said, limits)
    worded = False  # the question's words ask for one of its subject's entries alone
    if subject and asked is not None and said not in CONVERSATION_INTENTS:
        by_words = _by_words(top, allowed, asked, limits)
        if isinstance(by_words, ModeChoice):
            return by_words
        allowed, worded = by_words, by_words is not allowed
        top = allowed[0]
    rivals = [h for h in allowed[1:] if bool(h.entry.mentions) == subject]
    margin = top.score - rivals[0].score if rivals else 1.0
    # A name only the top entry states ("Is Mastercard accepted?") makes it relevant, and
    # the answer when no other entry is closer in meaning.
    named = top.stated and top.dense >= max(h.dense for h in allowed) - NAME_SLACK
    relevant = subject or top.stated or top.dense >= limits.grounded_similarity
    if not relevant:
        why = f"best entry {top.entry.id} similarity {top.dense:.3f} < {limits.grounded_similarity}"
        choice = _no_answer(intent, why, unsure_question)
        hit = _said_alone(allowed, limits)
        if choice.mode == "abstain" and hit is not None:
            return _offer_said(hit, why, limits)
        return choice
    same = [top, *[h for h in rivals if (h.entry.mentions and
                                         set(h.entry.mentions) & set(top.entry.mentions))
                   or not subject]][:limits.grounded_entries]
    why = (f"{top.entry.id}: similarity {top.dense:.3f}, score {top.score:.3f}, lead "
           f"{margin:.3f}" + (", subject named" if subject else "")
           + (", states a name the question says" if top.stated else ""))
    confident = named or worded or (margin >= limits.kb_margin
                          and (subject or top.dense >= limits.kb_similarity))
    if confident and said not in CONVERSATION_INTENTS:
        unsure = "" if sure or intent is None else f"; intent {intent} unsure"
        return ModeChoice("kb", f"one confident entry ({why}{unsure})", (top,))
    if said in CONVERSATION_INTENTS:
        return ModeChoice("grounded", f"intent {said}: the tier answers, grounded ({why})",
                          tuple(same))
    if not subject and all(h.said is False and not h.stated for h in same):
        hit = _said_alone(allowed, limits)
        if hit is not None:
            return _offer_said(hit, f"{why}; not its keywords", limits)
        return ModeChoice("abstain", f"relevant in meaning ({why}), but the question says "
                          "none of the entries' keywords: it asks something else")
    if not subject and limits.suggest:
        return ModeChoice("suggest", f"relevant but not decisive, about no named subject "
                          f"({why}): the entries are offered", tuple(same))
    return ModeChoice("grounded", f"relevant but not decisive ({why})", tuple(same))


def _wider(named: Hit, wide: Hit, allowed: list[Hit], said: str | None,
           limits: Thresholds) -> ModeChoice:
    """A product or city is named, but an entry about no name is closer in meaning ("My
    Aurora flickers, how do I make a warranty claim?": the claim entry, not the Aurora's
    warranty years)."""
    others = [h.score for h in allowed if h is not wide and not h.entry.mentions]
    lead = wide.score - max([named.score, *others])
    why = (f"{wide.entry.id}, about no name, similarity {wide.dense:.3f} > "
           f"{named.dense:.3f} of {named.entry.id}, the named subject's")
    if said in CONVERSATION_INTENTS:
        return ModeChoice("grounded", f"intent {said}: the tier answers, grounded ({why})",
                          (wide, named))
    if wide.dense >= limits.kb_similarity and lead >= limits.kb_margin:
        return ModeChoice("kb", f"one confident entry ({why}, lead {lead:.3f})", (wide,))
    if limits.suggest:
        return ModeChoice("suggest", f"two readings ({why}): both entries are offered",
                          (named, wide))
    return ModeChoice("grounded", f"two readings ({why})", (wide, named))


def _by_words(top: Hit, allowed: list[Hit], asked: frozenset[str],
              limits: Thresholds) -> ModeChoice | list[Hit]:
    """A question naming a product or city, judged by the kinds of fact its words ask for
    (`knowledge.aspects`): none its entries hold ("Is the Halo dimmable?") is abstained;
    one is that entry's question, put first (a new list); several ground the tier's answer
    together. The ranking as it was (the same list) when the entries' tags have no words."""
    about = [h for h in allowed if set(h.entry.mentions) & set(top.entry.mentions)]
    held = {tag for h in about for tag in h.entry.tags}
    if not judged(held):
        return allowed
    name = top.entry.mentions[0]
    if not asked & held:
        return ModeChoice("abstain", f"the question names {name} but asks for none of what "
                          f"the knowledge base holds about it ({', '.join(sorted(held))})")
    wanted = [h for h in about if asked & set(h.entry.tags)]
    if len(wanted) > 1:
        kinds = ", ".join(sorted(asked & held))
        return ModeChoice("grounded", f"the question asks for {kinds} of {name}: the tier "
                          "answers from their entries", tuple(wanted[:limits.grounded_entries]))
    # "What would the X set me back?" is nearer in shape to the warranty entry's question
    # (0.900) than to the price entry's; its words ask for the price.
    return [wanted[0], *(h for h in allowed if h is not wanted[0])]


def _said_alone(allowed: list[Hit], limits: Thresholds) -> Hit | None:
    """The one entry whose keywords the question says, if near enough in meaning."""
    said = [h for h in allowed if h.said and h.dense >= limits.keyword_similarity]
    return said[0] if len(said) == 1 else None


def _offer_said(hit: Hit, why: str, limits: Thresholds) -> ModeChoice:
    """Near, though not near enough to be relevant by meaning alone, and the question says
    what the entry is about: offered with the hand-off (or, with `suggest` off, the tier
    answers from it), never as a verbatim answer."""
    why += (f"; the question says {hit.entry.id}'s keywords (similarity {hit.dense:.3f} >= "
            f"{limits.keyword_similarity})")
    return ModeChoice("suggest" if limits.suggest else "grounded",
                      f"{why}: the entry is offered", (hit,))


def _closest_first(allowed: list[Hit], limits: Thresholds) -> list[Hit]:
    """Relevance is a matter of meaning: when the first entry by fused score is about no
    name, states none the question says and is not near in meaning, while entries below it
    are, those lead. The lexical part can lift an entry on a word alone: "Which ways of
    paying does your shop take?" ranked "Is there a way to cancel a purchase?" (0.853)
    over the payment entry (0.905)."""
    if not allowed:
        return allowed
    first = allowed[0]
    if first.entry.mentions or first.stated or first.dense >= limits.grounded_similarity:
        return allowed
    near = [h for h in allowed
            if not h.entry.mentions and h.dense >= limits.grounded_similarity]
    return [*near, *(h for h in allowed if all(h is not n for n in near))]


def _confident(allowed: list[Hit], limits: Thresholds) -> bool:
    """The best entry names the question's subject, or is similar enough for a kb answer.
    (Not a name it states: "My order paid by Alipay has not come" is the order's status.)"""
    if not allowed:
        return False
    return bool(allowed[0].entry.mentions) or allowed[0].dense >= limits.kb_similarity


def _no_answer(intent: str | None, why: str, unsure_question: bool = False) -> ModeChoice:
    conversation = intent in CONVERSATION_INTENTS or intent in SMALL_TALK_INTENTS
    if conversation and unsure_question:
        return ModeChoice("abstain", f"a question, intent {intent} unsure; {why}")
    if conversation:
        return ModeChoice("open", f"intent {intent}; {why}")
    return ModeChoice("abstain", f"a fact question; {why}")
