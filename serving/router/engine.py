"""The routing decision: sensitive words, features, intent, then the rule tree.

Pure Python and numpy: importing it never imports vllm or torch. The cheap path
(hashed n-gram intent classifier, hand-made signals) decides most messages; only a
message whose intent it is unsure of is embedded with MiniLM, and a session's state
is kept in an LRU context cache so earlier turns are never recomputed.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from serving.router import features as feat
from serving.router.dataset import ROUTES
from serving.router.rules import RuleTree, Step, load_rules, parse_rules
from serving.router.sensitive import Hit, SensitiveMatcher, strongest

MODEL_DIR = Path(__file__).parent / "model"
FEATURE_CHARS = 4000
TEXTS_KEPT = 4096  # distinct message texts whose intent and kb match are kept
KEPT_CHARS = 1000  # longer ones are rarely sent twice
HISTORY_ANALYSED = 16  # earlier messages a rebuilt session state reads
# Below this the classifier's top intent is a guess (ten intents: 10 % is chance), unless
# the hand-made term signal of that intent backs it. In the routing set every message read
# as a complaint, hand-off or multi-step is sure (10 of 10 in the held-out split, 67 of 67
# in training); of the knowledge base's 274 held-out fact questions 23 are read as one,
# 8 of them sure.
SURE_INTENT = 0.3
INTENT_SIGNALS = {"complaint": "complaint_terms", "human_handoff": "handoff_terms",
                  "multi_step": "multi_issue_terms"}
DATA_DIR = Path(__file__).parent / "data"


def _softmax(z: np.ndarray) -> np.ndarray:
    z = np.exp(z - z.max())
    return z / z.sum()


@dataclass
class Classifier:
    labels: list[str]
    weights: np.ndarray  # (dim, labels)
    bias: np.ndarray

    @classmethod
    def load(cls, path: Path) -> Classifier:
        with np.load(path, allow_pickle=False) as npz:
            return cls([str(x) for x in npz["labels"]], npz["weights"], npz["bias"])

    def save(self, path: Path) -> None:
        np.savez_compressed(path, labels=np.array(self.labels), weights=self.weights,
                            bias=self.bias)

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        return _softmax(x @ self.weights + self.bias)


@dataclass(frozen=True)
class _TextFeatures:
    probs: np.ndarray
    vector: np.ndarray | None
    kb_match: float


@dataclass
class SessionState:
    turns: int = 0
    max_complaint: float = 0.0
    embeddings: list[np.ndarray] = field(default_factory=list)


@dataclass
class Decision:
    tier: str | None  # None: blocked, answered by the appliance itself
    rule: str
    intent: str
    features: dict[str, float]
    path: list[Step]
    hits: list[Hit]
    embedded: bool
    cache_hit: bool
    intent_sure: bool = True  # the classifier's probability or a term signal backs it


def feature_names(intents: list[str]) -> frozenset[str]:
    return frozenset([*(f"p_{i}" for i in intents), *feat.SIGNAL_NAMES, "kb_match",
                      "prior_complaint"])


class RoutingEngine:
    def __init__(self, matcher: SensitiveMatcher, rules_path: Path | None = None,
                 model_dir: Path = MODEL_DIR, *, tiers: Collection[str] = ROUTES,
                 cache_sessions: int = 1000, embed_below: float = 0.55):
        self.matcher = matcher
        self.tiers = tuple(tiers)
        self.fast = Classifier.load(model_dir / "intent_fast.npz")
        self.slow = Classifier.load(model_dir / "intent_embed.npz")
        with np.load(model_dir / "kb.npz", allow_pickle=False) as npz:
            self.kb = npz["vectors"]
        self.known = feature_names(self.fast.labels)
        self.rules: RuleTree = load_rules(rules_path or model_dir / "rules.yaml", self.known,
                                            self.tiers)
        self.embed_below = embed_below
        self.cache_sessions = cache_sessions
        self._cache: OrderedDict[str, SessionState] = OrderedDict()
        self._embedder = None
        self._lock = threading.Lock()
        # What a message's text alone decides (intent, kb match), by text: customers send
        # the same few questions all day, and each costs the hashed n-grams and a 16k-wide
        # product (a tenth of the router's CPU per kb answer, py-spy 2026-12-04).
        self._by_text: OrderedDict[tuple[str, bool], _TextFeatures] = OrderedDict()

    # -- pieces ---------------------------------------------------------------------

    def embedder(self) -> Any:
        """Built on first use: 90 MB of weights most routers never need to touch."""
        with self._lock:
            if self._embedder is None:
                from serving.router.embedder import MiniLMEmbedder

                self._embedder = MiniLMEmbedder()
            return self._embedder

    def intent(self, text: str, hashed: np.ndarray, *, allow_embedding: bool = True
               ) -> tuple[np.ndarray, np.ndarray | None]:
        probs = self.fast.probabilities(hashed)
        if probs.max() >= self.embed_below or not allow_embedding:
            return probs, None
        vector = self.embedder().embed(text)
        return self.slow.probabilities(vector), vector

    def _message_features(self, text: str, turn: int, *, full: bool = False
                          ) -> tuple[dict[str, float], np.ndarray, np.ndarray | None]:
        length = len(text)
        # A huge message costs no more than a long one: its head and tail carry the signal.
        if len(text) > FEATURE_CHARS:
            text = text[: FEATURE_CHARS // 2] + " " + text[-FEATURE_CHARS // 2:]
        # The embedding only runs when the rules test intent and the cheap classifier is
        # unsure (or when explaining): most messages are decided without it.
        needs_intent = full or any(f.startswith("p_") for f in self.rules.referenced)
        known = self._text_features(text, needs_intent)
        values = feat.signals(text, turn) | {"length_chars": float(length)}
        values |= {f"p_{label}": float(p) for label, p in zip(self.fast.labels, known.probs,
                                                               strict=True)}
        values["kb_match"] = known.kb_match
        return values, known.probs, known.vector

    def _text_features(self, text: str, needs_intent: bool) -> _TextFeatures:
        key = (text, needs_intent)
        with self._lock:
            known = self._by_text.get(key)
            if known is not None:
                self._by_text.move_to_end(key)
                return known
        hashed = feat.hashed_ngrams(text)
        probs, vector = self.intent(text, hashed, allow_embedding=needs_intent)
        kb_match = float((self.kb @ hashed).max()) if len(self.kb) else 0.0
        for array in (probs, vector):
            if array is not None:
                array.setflags(write=False)  # shared by every later message of this text
        known = _TextFeatures(probs, vector, kb_match)
        if len(text) > KEPT_CHARS:
            return known
        with self._lock:
            self._by_text[key] = known
            while len(self._by_text) > TEXTS_KEPT:
                self._by_text.popitem(last=False)
        return known

    def _session(self, session_id: str | None, history: list[str]) -> tuple[SessionState, bool]:
        """The session's state before this message: from the cache, or rebuilt."""
        if session_id is not None:
            with self._lock:
                state = self._cache.get(session_id)
                if state is not None:
                    self._cache.move_to_end(session_id)
                    return state, True
        state = SessionState(turns=len(history))
        # The newest messages carry the session's mood; a client-sent history of thousands
        # costs no more than this many (the count of turns is still all of them).
        first = max(0, len(history) - HISTORY_ANALYSED)
        for turn, text in enumerate(history[first:], start=first + 1):
            values, _, _ = self._message_features(text, turn)
            state.max_complaint = max(state.max_complaint, values["p_complaint"])
        return state, False

    def _remember(self, session_id: str | None, state: SessionState) -> None:
        if session_id is None:
            return
        with self._lock:
            self._cache[session_id] = state
            self._cache.move_to_end(session_id)
            while len(self._cache) > self.cache_sessions:
                self._cache.popitem(last=False)

    # -- the decision ---------------------------------------------------------------

    def decide(self, text: str, *, session_id: str | None = None,
               history: list[str] | None = None, full: bool = False) -> Decision:
        """Route one message; `full` also runs the costly intent path (for explain)."""
        hits = self.matcher.find(text)
        state, cache_hit = self._session(session_id, history or [])
        turn = state.turns + 1
        values, probs, vector = self._message_features(text, turn, full=full)
        values["prior_complaint"] = state.max_complaint
        intent = self.fast.labels[int(np.argmax(probs))]
        signal = INTENT_SIGNALS.get(intent)
        sure = float(probs.max()) >= SURE_INTENT or (signal is not None and values[signal] > 0)
        if strongest(hits) == "block":
            tier, rule, path = None, f"blocked.{hits[0].list_name}", []
        else:
            tier, rule, path = self.rules.decide(values)
        embeddings = [*state.embeddings[-3:], vector] if vector is not None else state.embeddings
        self._remember(session_id, SessionState(
            turn, max(state.max_complaint, values["p_complaint"]), embeddings))
        return Decision(tier, rule, intent, values, path, hits, vector is not None, cache_hit,
                        sure)

    def reload_rules(self, text: str) -> RuleTree:
        """Validate, then swap: a bad file leaves the running rules untouched."""
        tree = parse_rules(text, self.known, self.tiers)
        self.rules = tree
        return tree


def timed_decide(engine: RoutingEngine, text: str, **kwargs: object) -> tuple[Decision, float]:
    started = time.perf_counter()
    decision = engine.decide(text, **kwargs)
    return decision, time.perf_counter() - started
