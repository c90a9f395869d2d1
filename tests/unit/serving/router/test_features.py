import zlib

import numpy as np
import pytest

from serving.router.features import HASH_DIM, hashed_ngrams


def expected(keys: list[str]) -> np.ndarray:
    vector = np.zeros(HASH_DIM, dtype=np.float32)
    for key in keys:
        vector[zlib.crc32(key.encode()) % HASH_DIM] += 1.0
    return vector / np.linalg.norm(vector)


@pytest.mark.parametrize(("text", "keys"), [
    # " Ab A " lowered: its 2-, 3- and 4-grams, the words, the bigram; "a" twice.
    ("Ab A", [" a", "ab", "b ", " a", "a ", " ab", "ab ", "b a", " a ", " ab ", "ab a", "b a ",
              "w:ab", "w:a", "b:ab a"]),
    ("退货", [" 退", "退货", "货 ", " 退货", "退货 ", " 退货 ", "w:退货"]),
    ("", ["  "]),
])
def test_counts_every_ngram_once_per_occurrence(text: str, keys: list[str]) -> None:
    vector = hashed_ngrams(text)
    assert vector.dtype == np.float32
    np.testing.assert_array_equal(vector, expected(keys))
