"""Keywords: words a customer asking about an entry says ("refund", "hotline", "包邮"),
matched as word starts in Latin script ("refund" is refunds and refunded, not "prefund")
and anywhere in Chinese, whatever the question's language ("能刷Visa卡吗" says "visa").

Dense similarity reads a question's shape more than the one word that says what it asks:
"phone number pls" is 0.861 from "What is your support phone number?", under the relevance
bar, while "Do you offer a military discount?" is 0.896 from the free-shipping entry, over
it. An entry's keywords decide those two (`knowledge.modes`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_HAN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


def words_pattern(words: Iterable[str]) -> re.Pattern[str] | None:
    """One pattern for `words`, longest first, to search in lower-cased text; None for
    no words."""
    parts = []
    for word in sorted({w.strip().lower() for w in words if w.strip()}, key=len,
                       reverse=True):
        escaped = re.escape(word)
        parts.append(escaped if _HAN.match(word) else rf"(?<![a-z]){escaped}")
    return re.compile("|".join(parts)) if parts else None
