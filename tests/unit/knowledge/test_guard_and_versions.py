"""The fact guard's notion of a stated fact, and versions published atomically."""

from __future__ import annotations

from pathlib import Path

from knowledge.entries import Entry
from knowledge.guard import (
    StreamFactGuard,
    check,
    facts,
    known_facts,
    unsupported_values,
    value_words,
)
from knowledge.versions import VersionStore


def test_facts_are_numbers_phones_emails_prices_normalised() -> None:
    text = "Call 400-820-1234 or warranty@lumenhome.example; 129.00 euros, 24/7, 3 years"
    assert facts(text) == {"400-820-1234", "warranty@lumenhome.example", "129", "24/7", "3"}


def test_an_invented_number_fails_and_a_restated_one_passes() -> None:
    source = ["The Halo floor lamp costs 129.00 euros.", "How much is the Halo lamp?"]
    assert check("It is 129 euros.", source).passed
    assert check("No numbers here, sorry.", source).passed
    verdict = check("It costs 99 euros and ships in 2 days", source)
    assert not verdict.passed and verdict.unsupported == ("2", "99")


def _entry(answer: str) -> Entry:
    return Entry(id="a", questions={"en": ["q?"]}, answers={"en": answer})


def test_value_words_are_what_tells_subjects_apart_not_their_wording() -> None:
    colours = ["brass", "white", "black", "green", "red", "blue", "grey", "pink", "gold", "tan"]
    names = ["Nova", "Halo", "Iris", "Jade", "Kite", "Loop", "Echo", "Dune", "Glow", "Lumi",
             "Orbit", "Pixel", "Comet", "Fable", "Ember", "Drift", "Ribbon", "Beacon", "Harbor",
             "Aurora"]
    answers = [f"The {name} lamp comes in {colours[i % 10]}." for i, name in enumerate(names)]
    answers.append("Nova 床头灯 有黄铜色可选。")
    values = value_words(answers)  # 21 answers: a value word is in at most 2
    assert {"nova", "brass", "black", "黄铜", "铜色"} <= values
    assert not {"comes", "lamp"} & values  # in every answer: wording, not a value
    nova = ["The Nova lamp comes in brass."]
    assert unsupported_values("The Nova comes in black.", nova, values) == {"black"}
    assert unsupported_values("Yes, the Nova comes in brass.", nova, values) == set()
    assert unsupported_values("It is lovely.", nova, values) == set()


def _streamed(sources: list[str], pieces: list[str]) -> tuple[str, bool]:
    guard = StreamFactGuard(known_facts(sources))
    sent = "".join(guard.feed(p) for p in pieces)
    return sent + guard.flush(), guard.stopped


def test_a_streamed_answer_stops_before_the_first_number_no_source_states() -> None:
    # A number split across pieces is checked whole: 9 of 9.90 is not let out as 9.
    assert _streamed(["costs 9.90 euros"], ["It costs 9", ".", "90 euros."]) == (
        "It costs 9.90 euros.", False)
    assert _streamed(["costs 9.90 euros"], ["It costs 9", ".", "95 euros."]) == (
        "It costs ", True)
    assert _streamed(["call 400-820-1234"], ["Call 400", "-820-", "1234 now."]) == (
        "Call 400-820-1234 now.", False)
    assert _streamed(["q"], ["Sure! It ships in 3 days", " and costs 5."]) == (
        "Sure! It ships in ", True)
    assert _streamed(["q"], ["送到要", "3天"]) == ("送到要", True)
    # A list's item numbers are counts, not facts; a number inside an item is checked.
    assert _streamed(["q"], ["Steps:\n1. Unplug", "\n2) Wait\n", "3、done"]) == (
        "Steps:\n1. Unplug\n2) Wait\n3、done", False)
    assert _streamed(["q"], ["1. Unplug\n2. Wait 5 minutes"]) == ("1. Unplug\n2. Wait ", True)
    assert _streamed(["q"], ["Write to help@shop.example"]) == (
        "Write to help@shop.example", False)  # addresses: the output filter's, not this
    # A run of digits longer than any stated fact is not held back without end.
    guard = StreamFactGuard(known_facts(["q"]))
    assert guard.feed("Your code: ") == "Your code: "
    assert "".join(guard.feed("1234") for _ in range(17)) == "" and guard.stopped
    assert guard.flush() == ""


def test_publish_keeps_old_versions_and_rollback_points_back(tmp_path: Path) -> None:
    store = VersionStore(tmp_path / "kb")
    assert store.current_version() is None
    assert store.publish([_entry("one")]) == 1
    assert store.publish([_entry("two")]) == 2
    assert store.current_version() == 2 and store.versions() == [1, 2]
    assert store.load(2).entries[0].answer("en") == "two"
    store.point(1)
    assert store.current_version() == 1 and store.load(1).entries[0].answer("en") == "one"
    assert not list((tmp_path / "kb").glob(".*tmp"))  # no half-written file left
