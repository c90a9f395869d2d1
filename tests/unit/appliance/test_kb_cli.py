"""`onlycs kb import`: a good file is a new version; a bad one names file, line and field and
publishes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.cli import main
from knowledge.versions import VersionStore


def _config(tmp_path: Path) -> Path:
    config = tmp_path / "config.toml"
    config.write_text(f'[knowledge]\ndir = "{tmp_path / "kb"}"\n')
    return config


def test_import_publishes_a_version_and_merge_keeps_the_rest(tmp_path: Path, capsys) -> None:
    config = _config(tmp_path)
    faq = tmp_path / "faq.md"
    faq.write_text("## Do you ship abroad?\nYes, to 12 countries.\n\n## 可以开发票吗？\n可以。\n")
    assert main(["kb", "import", str(faq), "--config", str(config)]) == 0
    assert "published version 1: 2 entries" in capsys.readouterr().out
    more = tmp_path / "more.csv"
    more.write_text("id,question,answer\ngift,Do you wrap gifts?,Yes for 2 euros.\n")
    assert main(["kb", "import", str(more), "--merge", "--config", str(config)]) == 0
    store = VersionStore(tmp_path / "kb")
    assert store.current_version() == 2 and len(store.load(2)) == 3


@pytest.mark.parametrize(("text", "message"), [
    ("id,question\nx,q?\n", "bad.csv:1: answer: missing column"),
    ("id,question,answer\nx,q?,\n", "bad.csv:2: answers: the en answer is empty"),
])
def test_a_bad_file_publishes_nothing(tmp_path: Path, capsys, text: str, message: str) -> None:
    config = _config(tmp_path)
    bad = tmp_path / "bad.csv"
    bad.write_text(text)
    assert main(["kb", "import", str(bad), "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert message in err and "nothing was imported" in err
    assert VersionStore(tmp_path / "kb").versions() == []
