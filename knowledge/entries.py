"""A knowledge-base entry and a knowledge base (one immutable version of all entries)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Language = Literal["en", "zh"]
LANGUAGES: tuple[Language, ...] = ("en", "zh")
MAX_TEXT_CHARS = 4000  # one answer or question; a 10 MB "entry" is a mistake, not a fact
MAX_ENTRIES = 100_000
MAX_KEYWORDS = 100  # per language and entry
MAX_KEYWORD_CHARS = 40
_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,79}$")
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


def language_of(text: str) -> Language:
    return "zh" if _CJK.search(text) else "en"


def _check_text(text: str, what: str) -> None:
    if not text.strip():
        raise ValueError(f"{what} is empty")
    if len(text) > MAX_TEXT_CHARS:
        raise ValueError(f"{what} has {len(text)} characters; at most {MAX_TEXT_CHARS}")


class Entry(BaseModel):
    """One fact: the questions it answers and its answer, per language."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(description="Stable id: lowercase letters, digits, '.', '_' and '-'.")
    questions: dict[Language, list[str]] = Field(
        description="Questions this entry answers, per language ('en', 'zh').")
    answers: dict[Language, str] = Field(description="The verified answer, per language.")
    tags: list[str] = Field(default_factory=list)
    product: str | None = Field(None, description="The product the entry is about, if any.")
    mentions: list[str] = Field(
        default_factory=list,
        description="Names a question (or its session) must contain for this entry to answer "
        "it: a product's or a city's names. Empty: any question may match.")
    keywords: dict[Language, list[str]] = Field(
        default_factory=dict,
        description="Words a question about this entry says, per language (English: word "
        "starts, 'refund' is refunds and refunded; Chinese: anywhere in the text). A "
        "question about no product or city that says none of the near entries' keywords "
        "is abstained, and one below the relevance bar that says one entry's is offered it "
        "(`knowledge.modes`). Empty: the entry is judged by similarity alone.")

    @field_validator("id")
    @classmethod
    def _id_shape(cls, value: str) -> str:
        if not _ID.match(value):
            raise ValueError("must be 1-80 of a-z, 0-9, '.', '_', '-', starting with a letter "
                             "or digit")
        return value

    @field_validator("answers")
    @classmethod
    def _answers(cls, value: dict[str, str]) -> dict[str, str]:
        if not value:
            raise ValueError("needs an answer in at least one language")
        for lang, text in value.items():
            _check_text(text, f"the {lang} answer")
        return value

    @field_validator("questions")
    @classmethod
    def _questions(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for lang, texts in value.items():
            for text in texts:
                _check_text(text, f"a {lang} question")
        return value

    @field_validator("keywords")
    @classmethod
    def _keywords(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for lang, words in value.items():
            if len(words) > MAX_KEYWORDS:
                raise ValueError(f"{len(words)} {lang} keywords; at most {MAX_KEYWORDS}")
            for word in words:
                if not word.strip():
                    raise ValueError(f"a keyword ({lang}) is empty")
                if len(word) > MAX_KEYWORD_CHARS:
                    raise ValueError(f"the {lang} keyword {word[:20]!r}... has {len(word)} "
                                     f"characters; at most {MAX_KEYWORD_CHARS}")
        return value

    @model_validator(mode="after")
    def _every_answer_has_a_question(self) -> Entry:
        for lang in self.answers:
            if not self.questions.get(lang):
                raise ValueError(f"the {lang} answer has no {lang} question")
        return self

    @property
    def languages(self) -> tuple[Language, ...]:
        return tuple(lang for lang in LANGUAGES if lang in self.answers)

    def answer(self, lang: Language) -> str:
        """The answer in `lang`, else in the entry's first language."""
        return self.answers.get(lang) or self.answers[self.languages[0]]

    def texts(self) -> list[str]:
        """What retrieval indexes: every question, and each answer (facts are words too)."""
        return [q for lang in self.languages for q in self.questions.get(lang, [])] + [
            self.answers[lang] for lang in self.languages]


@dataclass(frozen=True)
class KnowledgeBase:
    """One published version: entries by id, in file order."""

    version: int
    entries: tuple[Entry, ...]
    by_id: dict[str, Entry] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_id", {e.id: e for e in self.entries})

    @classmethod
    def of(cls, version: int, entries: Iterable[Entry]) -> KnowledgeBase:
        return cls(version, tuple(entries))

    def __len__(self) -> int:
        return len(self.entries)

    @cached_property
    def value_words(self) -> dict[Language, frozenset[str]]:
        """Per language, the words that tell one named subject's facts from another's
        (`knowledge.guard.value_words`)."""
        from knowledge.guard import value_words

        about = [e for e in self.entries if e.mentions]
        return {lang: value_words([e.answers[lang] for e in about if lang in e.answers])
                for lang in LANGUAGES}

    def source(self, entry: Entry) -> str:
        return f"kb:{entry.id}@v{self.version}"
