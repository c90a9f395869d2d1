"""The knowledge base a replica serves: the version in force with its retriever, swapped
whole on publish. A request takes `snapshot()` once and answers from it to the end, so a
publish mid-request never mixes two versions in one answer."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

from kernel.config import KnowledgeConfig
from knowledge.embedder import E5Small
from knowledge.entries import Entry, KnowledgeBase, Language, language_of
from knowledge.files import read_file
from knowledge.lumen import SHIPPED
from knowledge.modes import ModeChoice, Thresholds, asks, choose
from knowledge.retrieval import EmbeddingCache, Hit, Retriever
from knowledge.versions import VersionStore

RECHECK_S = 1.0  # how often a replica looks whether another published a new version


@dataclass(frozen=True)
class Snapshot:
    kb: KnowledgeBase
    retriever: Retriever


@dataclass(frozen=True)
class Answer:
    """What retrieval decided for one question, on one version."""

    choice: ModeChoice
    version: int
    lang: Language
    hits: tuple[Hit, ...]
    seconds: float
    values: frozenset[str] = frozenset()  # the version's value words in `lang`
    # What the question names that no entry writes ("bank transfer", "苏州"): an answer
    # that says it claims what the knowledge base does not hold.
    strangers: tuple[str, ...] = ()

    @property
    def mode(self) -> str:
        return self.choice.mode

    def sources(self) -> list[str]:
        return [f"kb:{h.entry.id}@v{self.version}" for h in self.choice.entries]


class KnowledgeService:
    def __init__(self, config: KnowledgeConfig, embedder_cache: EmbeddingCache | None = None,
                 *, read_only: bool = False):
        self.config = config
        self.store = VersionStore(config.dir)
        self.thresholds = Thresholds(config.kb_similarity, config.kb_margin,
                                     config.grounded_similarity, config.grounded_entries,
                                     config.suggest, config.keyword_similarity)
        self.cache = embedder_cache if embedder_cache is not None else (
            EmbeddingCache(E5Small()) if config.dense else None)
        self._lock = threading.Lock()
        self._checked = 0.0
        version = self.store.current_version()
        if version is None and read_only:  # a CLI look before the first start: the seed
            self._snapshot = self._build(KnowledgeBase.of(1, read_file(self.seed)))
            return
        if version is None:
            version = self.store.publish(read_file(self.seed))
        self._snapshot = self._build(self.store.load(version))

    @property
    def seed(self) -> Path:
        return self.config.seed_file or SHIPPED

    def _build(self, kb: KnowledgeBase) -> Snapshot:
        return Snapshot(kb, Retriever(kb, self.cache))

    def snapshot(self) -> Snapshot:
        now = time.monotonic()
        if now - self._checked >= RECHECK_S:
            self._checked = now
            version = self.store.current_version()
            if version is not None and version != self._snapshot.kb.version:
                self.reload(version)
        return self._snapshot

    def reload(self, version: int) -> Snapshot:
        with self._lock:
            if version != self._snapshot.kb.version:
                self._snapshot = self._build(self.store.load(version))
        return self._snapshot

    def publish(self, entries: list[Entry]) -> int:
        """Index first, then make it current: a version that cannot be indexed never serves."""
        with self._lock:
            version = max(self.store.versions(), default=0) + 1
            snapshot = self._build(KnowledgeBase.of(version, entries))
            written = self.store.publish(entries)
            assert written == version
            self._snapshot = snapshot
        return version

    def rollback(self, version: int) -> int:
        self.store.point(version)
        self.reload(version)
        return version

    def answer(self, question: str, intent: str | None, context: str = "",
               snapshot: Snapshot | None = None, top_k: int = 5, *, sure: bool = True
               ) -> Answer:
        started = time.perf_counter()
        snap = snapshot or self.snapshot()
        hits = snap.retriever.search(question, top_k, context=context)
        strangers = snap.retriever.strangers.find(question)
        asked = snap.retriever.asked(question, context)
        choice = choose(hits, intent, self.thresholds, sure=sure, question=asks(question),
                        asked=asked, strangers=strangers.names,
                        destinations=strangers.destinations)
        # The fact guard judges them as `choose` does: against entries that name places or
        # means themselves, or a parcel's way. "买的东西坏了" (东西 is one of jieba's place
        # words) and "I live in Leeds and my lamp broke" are the warranty claim's anywhere.
        judged = any(h.names and not h.entry.mentions for h in choice.entries) or (
            bool(strangers.destinations) and "delivery" in asked)
        lang = language_of(question)
        return Answer(choice, snap.kb.version, lang, tuple(hits),
                      time.perf_counter() - started, snap.kb.value_words[lang],
                      strangers.names if judged else ())

    def abstain_text(self, lang: Language) -> str:
        return self.config.abstain_zh if lang == "zh" else self.config.abstain_en

    def suggest_text(self, lang: Language, entries: list[Entry]) -> str:
        """The offered entries, each as its first question in `lang` and its answer."""
        lines = "\n".join(
            f"- {(e.questions.get(lang) or e.questions[e.languages[0]])[0]} {e.answer(lang)}"
            for e in entries)
        template = self.config.suggest_zh if lang == "zh" else self.config.suggest_en
        return template.replace("{entries}", lines)

