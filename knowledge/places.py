"""Place names in Chinese text: the words jieba's dictionary tags as places (`ns`).

Chinese writes no capitals and no spaces, so "你们在苏州有门店吗？" names Suzhou only for a
reader who knows the word. jieba's dictionary (kept with the library; 17,401 words of two
to eight Han characters tagged `ns`: cities, provinces, countries) knows it; its segmenter
and tagger are not loaded (their tables grew a Python process by 126 MiB, where this list
takes a few), so a Han run is matched longest word first. Some `ns` words are ordinary
words too ("东西", "上门"): a caller judges a place only where a question asks where
something is or goes.
"""

from __future__ import annotations

import functools
import re

_HAN_RUN = re.compile(r"[\u4e00-\u9fff]+")
_HAN_WORD = re.compile(r"[\u4e00-\u9fff]{2,}")
LONGEST = 8  # characters: "布宜诺斯艾利斯" is seven


@functools.cache
def gazetteer() -> frozenset[str]:
    """jieba's `ns` words of two to LONGEST Han characters."""
    import jieba

    places = set()
    with jieba.dt.get_dict_file() as lines:
        for raw in lines:
            word, _, rest = raw.decode("utf-8").strip().partition(" ")
            if rest.endswith(" ns") and len(word) <= LONGEST and _HAN_WORD.fullmatch(word):
                places.add(word)
    return frozenset(places)


def places(text: str) -> list[tuple[str, int]]:
    """The places `text` names with where each begins, longest match first, left to right."""
    found: list[tuple[str, int]] = []
    runs = list(_HAN_RUN.finditer(text))
    known = gazetteer() if runs else frozenset()
    for run in runs:
        word, start = run.group(0), 0
        while start < len(word) - 1:
            size = next((n for n in range(min(LONGEST, len(word) - start), 1, -1)
                         if word[start:start + n] in known), 0)
            if size:
                found.append((word[start:start + size], run.start() + start))
            start += size or 1
    return found
