"""Hybrid retrieval over one knowledge-base version: BM25 (bm25s) on word tokens and Chinese
character n-grams, fused with dense cosine similarity from the multilingual embedder.

Every question and answer of an entry is indexed on its own; an entry scores its best text.
The fused score is `dense_weight * cosine + (1 - dense_weight) * lexical`, where `lexical` is
BM25 divided by the BM25 of the query's own tokens against the index (how much of the
question's weight the entry covers, 0..1) so that both halves are absolute, not per-query ranks.
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
import threading
from collections import Counter, OrderedDict
from dataclasses import dataclass

import bm25s
import numpy as np

from knowledge.aspects import asked
from knowledge.embedder import Embedder
from knowledge.entries import Entry, KnowledgeBase
from knowledge.keywords import words_pattern
from knowledge.mentions import MentionIndex, StrangerNames, proper_names
from knowledge.tokens import tokens

DENSE_WEIGHT = 0.6
_WORD = re.compile(r"[a-z]+")
QUERY_CACHE = 4096  # distinct questions whose embedding is kept
RANKINGS_KEPT = 4096  # distinct (question, earlier turns) rankings kept per version
RANKED_CHARS = 1000  # longer questions are rarely asked twice word for word


@dataclass(frozen=True)
class Hit:
    entry: Entry
    score: float  # fused, 0..1
    dense: float
    lexical: float
    text: str  # the indexed text that matched best
    eligible: bool = True  # False: the entry is about a name the question does not mention
    stated: bool = False  # the question says a proper name only this entry's answer states
    said: bool | None = None  # the question says one of its keywords (None: it has none)
    names: bool = False  # its answer states a proper name no other entry does ("Visa")


class EmbeddingCache:
    """Embeddings by text, shared across versions: publishing one changed entry embeds only
    that entry's texts, not the whole knowledge base again."""

    def __init__(self, embedder: Embedder):
        self.embedder = embedder
        self._rows: dict[str, np.ndarray] = {}
        self._queries: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def query(self, text: str) -> np.ndarray:
        """A customer's question, embedded; the most recent distinct questions are kept
        (a shop's customers ask the same few things all day)."""
        with self._lock:
            row = self._queries.get(text)
            if row is not None:
                self._queries.move_to_end(text)
                return row
        row = self.embedder.queries([text])[0]
        with self._lock:
            self._queries[text] = row
            if len(self._queries) > QUERY_CACHE:
                self._queries.popitem(last=False)
        return row

    def has_query(self, text: str) -> bool:
        with self._lock:
            return text in self._queries

    def passages(self, texts: list[str], kinds: list[bool]) -> np.ndarray:
        keys = [hashlib.sha1(f"{q}:{t}".encode()).hexdigest() for t, q in zip(texts, kinds,
                                                                                strict=True)]
        missing = [i for i, k in enumerate(keys) if k not in self._rows]
        for query_side in (True, False):
            todo = [i for i in missing if kinds[i] == query_side]
            if not todo:
                continue
            batch = [texts[i] for i in todo]
            rows = (self.embedder.queries(batch) if query_side
                    else self.embedder.passages(batch))
            for i, row in zip(todo, rows, strict=True):
                self._rows[keys[i]] = row
        if not keys:
            return np.zeros((0, self.embedder.dim), dtype=np.float32)
        return np.stack([self._rows[k] for k in keys])


class Retriever:
    def __init__(self, kb: KnowledgeBase, cache: EmbeddingCache | None,
                 dense_weight: float = DENSE_WEIGHT):
        self.kb = kb
        self.dense_weight = dense_weight if cache is not None else 0.0
        self.cache = cache
        self.mentions = MentionIndex(kb.entries)
        self.strangers = StrangerNames(kb.entries)
        texts, owners, query_side = [], [], []
        for index, entry in enumerate(kb.entries):
            questions = [q for lang in entry.languages for q in entry.questions.get(lang, [])]
            for text in entry.texts():
                texts.append(text)
                owners.append(index)
                query_side.append(text in questions)
        self.texts = texts
        self.owners = np.asarray(owners, dtype=np.int64)
        stripped = [self.mentions.strip(t) for t in texts]
        corpus = [tokens(t) or ["\0"] for t in stripped]
        self.bm25 = bm25s.BM25()
        self.bm25.index(corpus, show_progress=False)
        frequency = Counter(word for doc in corpus for word in set(doc))
        self._idf = {w: math.log(1 + (len(corpus) - df + 0.5) / (df + 0.5))
                     for w, df in frequency.items()}
        self._max_idf = math.log(1 + (len(corpus) + 0.5) / 0.5)
        self._avg_length = sum(map(len, corpus)) / max(len(corpus), 1)
        self.vectors = cache.passages(stripped, query_side) if cache is not None else None
        # Which entries are about a name, and which entries each name belongs to: the
        # subject filter is then array work, not a loop over every entry per question.
        self._has_mentions = np.fromiter((bool(e.mentions) for e in kb.entries), dtype=bool,
                                         count=len(kb.entries))
        self._proper = proper_names(kb.entries)
        self._keywords = {i: pattern for i, e in enumerate(kb.entries) if (
            pattern := words_pattern(w for ws in e.keywords.values() for w in ws))}
        self._last: tuple[tuple[str, str], tuple[set[int], str, set[int]]] | None = None
        # A shop's customers ask the same few questions all day, many by the chat widget's
        # buttons, word for word: their ranking (a fixed version's) is kept.
        self._ranked = functools.lru_cache(maxsize=RANKINGS_KEPT)(self._rank)
        self._asked = functools.lru_cache(maxsize=RANKINGS_KEPT)(
            lambda text, context: asked(self._prepared(text, context)[1]))
        self._by_name: dict[str, list[int]] = {}
        # Entries about no name whose answer states one ("The flagship store is at 88
        # Lantern Road, Shanghai"): a question that says the name may be asking them.
        self._stating: dict[str, set[int]] = {}
        for index, entry in enumerate(kb.entries):
            for name in entry.mentions:
                self._by_name.setdefault(name, []).append(index)
            if not entry.mentions:
                for lang in entry.languages:
                    for name in self.mentions.find(entry.answer(lang)):
                        self._stating.setdefault(name, set()).add(index)
        # Entries whose answer names a place, brand or service ("Shanghai", "Visa"): a
        # question naming another one asks what the answer does not say.
        self._naming = set(self._proper.values()).union(*self._stating.values())

    def embeds(self, text: str, context: str = "") -> bool:
        """Whether `search` would run the embedder (a question not in the cache yet)."""
        if self.vectors is None or self.cache is None or not self.kb.entries:
            return False
        return not self.cache.has_query(self._prepared(text, context)[1])

    def asked(self, text: str, context: str = "") -> frozenset[str]:
        """The kinds of fact `text` asks for, by its words, its names taken out (kept by
        text, as rankings are)."""
        if len(text) + len(context) > RANKED_CHARS:
            return asked(self._prepared(text, context)[1])
        return self._asked(text, context)

    def search(self, text: str, top_k: int = 5, context: str = "") -> list[Hit]:
        """Rank entries for `text`; names in `context` (the session's earlier turns) count as
        mentioned when `text` itself names none ("and how much is it?")."""
        if not self.kb.entries:
            return []
        if len(text) + len(context) > RANKED_CHARS:
            return list(self._rank(text, top_k, context))
        return list(self._ranked(text, top_k, context))

    def _rank(self, text: str, top_k: int, context: str) -> tuple[Hit, ...]:
        subject, text, stating = self._prepared(text, context)
        words = tokens(text)
        lexical = np.zeros(len(self.texts), dtype=np.float32)
        if words:
            raw = self.bm25.get_scores(words)
            best = max(float(raw.max()) if raw.size else 0.0, self._self_score(words))
            lexical = np.asarray(raw, dtype=np.float32) / best if best > 0 else lexical
        dense = np.zeros(len(self.texts), dtype=np.float32)
        if self.vectors is not None and self.cache is not None:
            dense = self.vectors @ self.cache.query(text)
        fused = self.dense_weight * dense + (1 - self.dense_weight) * np.minimum(lexical, 1.0)
        # Entries about the named subject rank first, then entries about no particular name,
        # then entries about a name the question does not mention (listed for `explain`).
        entry_tier = np.where(self._has_mentions, 2, 1).astype(np.int8)
        entry_tier[sorted(subject)] = 0
        # With no subject named, an entry whose answer states a name the question says
        # ("Alipay") ranks first; with one named, so do the entries about no name that state
        # it: "上海的门店在什么地方？" names Shanghai, and asks the store entry, not the
        # delivery to Shanghai, which is closer in meaning to the rest of its words.
        stated = stating if subject else {self._proper[w] for w in _WORD.findall(text.lower())
                                          if w in self._proper}
        entry_tier[sorted(stated)] = 0
        tier = entry_tier[self.owners]
        allowed = tier < 2
        order = np.lexsort((-fused, tier))
        # top_k of the allowed entries, and the best few of the others (for their scores).
        best_text: dict[int, int] = {}
        counts = [0, 0]
        for position in order:
            owner = int(self.owners[position])
            kind = int(not allowed[position])
            if owner not in best_text and counts[kind] < top_k:
                best_text[owner] = int(position)
                counts[kind] += 1
                if counts[0] == top_k and counts[1] == top_k:
                    break
        lower = text.lower()
        return tuple(Hit(self.kb.entries[owner], float(fused[p]), float(dense[p]),
                         float(min(lexical[p], 1.0)), self.texts[p], bool(allowed[p]),
                         owner in stated, self._says(owner, lower), owner in self._naming)
                     for owner, p in best_text.items())

    def _says(self, index: int, lower: str) -> bool | None:
        pattern = self._keywords.get(index)
        return None if pattern is None else pattern.search(lower) is not None

    def _prepared(self, text: str, context: str) -> tuple[set[int], str, set[int]]:
        """The subject, the text without its names, and the entries about no name that
        state a name the text says; the last question's is kept, as the request path asks
        `embeds` and then `search` of the same one."""
        last = self._last
        if last is not None and last[0] == (text, context):
            return last[1]
        subject, by_kind = self._subject(text, context)
        stating = {i for name in self.mentions.find(text) for i in self._stating.get(name, ())}
        prepared = (subject, self.mentions.strip(text, kinds=by_kind), stating)
        self._last = ((text, context), prepared)
        return prepared

    def _about(self, names: set[str]) -> set[int]:
        return {i for name in names for i in self._by_name.get(name, [])}

    def _subject(self, text: str, context: str) -> tuple[set[int], bool]:
        """The entries the question is about, and whether a kind alone said so. A name in
        the text decides; else a kind ("the floor lamp") picks the conversation's product of
        that kind, or the one product of that kind; else the conversation's names."""
        named = self._about(set(self.mentions.find(text)))
        if named:
            return named, False
        earlier = self._about(set(self.mentions.find(context)))
        kind = self._about(self.mentions.of_kind(text))
        if not kind:
            return earlier, False
        if kind & earlier:
            return kind & earlier, True
        if len({self.kb.entries[i].product for i in kind}) == 1:
            return kind, True
        return set(), False  # two floor lamps and no word which: no subject assumed

    def _self_score(self, words: list[str]) -> float:
        """BM25 (Lucene form, as bm25s scores) of a text made of exactly the query's tokens:
        the most any indexed text could score. A word the index has never seen counts at the
        highest idf, so a question about something unknown ("delivery to Cairo") is never
        fully covered by any entry."""
        k1, b = self.bm25.k1, self.bm25.b
        length = len(words)
        norm = k1 * (1 - b + b * length / self._avg_length)
        total = 0.0
        for word, count in Counter(words).items():
            idf = self._idf.get(word, self._max_idf)
            total += idf * count * (k1 + 1) / (count + norm)
        return total
