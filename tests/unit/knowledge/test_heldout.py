"""The evaluation sets: they ask about facts the shipped knowledge base has, in the language
they claim, and the fresh set repeats no wording of the held-out set or the knowledge base."""

import re

from knowledge.entries import KnowledgeBase
from knowledge.files import read_file
from knowledge.heldout import CHECKS, HELDOUT, load
from knowledge.lumen import SHIPPED

HAN = re.compile(r"[\u4e00-\u9fff]")


def test_the_sets_name_real_entries_in_the_language_they_are_written_in():
    kb = KnowledgeBase.of(1, read_file(SHIPPED))
    for path in (HELDOUT, *CHECKS.values()):
        for row in load(path):
            assert row["entry"] is None or row["entry"] in kb.by_id, (path.name, row)
            assert (row["lang"] == "zh") == bool(HAN.search(row["question"])), (path.name, row)


def test_the_held_out_set_is_the_size_the_evaluation_needs():
    rows = load(HELDOUT)
    answerable = [r for r in rows if r["entry"]]
    assert len(answerable) >= 200
    assert sum(r["lang"] == "zh" for r in rows) >= 0.3 * len(rows)
    assert len(rows) - len(answerable) >= 40


def test_each_set_asks_its_own_questions_and_the_knowledge_base_none_of_them():
    kb = KnowledgeBase.of(1, read_file(SHIPPED))
    seen = {q for e in kb.entries for qs in e.questions.values() for q in qs}
    for path in (HELDOUT, *CHECKS.values()):
        rows = load(path)
        asked = {r["question"] for r in rows}
        assert len(asked) == len(rows), path.name
        assert not asked & seen, path.name
        assert {r["lang"] for r in rows if r["entry"] is None} == {"en", "zh"}, path.name
        seen |= asked
