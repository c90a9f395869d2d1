"""Reading knowledge-base files: JSONL, CSV and a Markdown FAQ. Every problem is a
`KnowledgeFileError` naming the file, the line and the field; nothing is half-read.

- JSONL: one entry per line, the fields of `Entry`.
- CSV: a header with at least `id`, `question`, `answer`; optional `question_zh`,
  `answer_zh`, `tags`, `product`, `mentions`, `keywords`, `keywords_zh`. Several questions,
  tags or keywords: separate with `|`.
- Markdown: `## question` then the answer's paragraphs; the language is read from the text,
  the id is the question's slug unless a `<!-- id: ... -->` line follows the heading, and a
  `<!-- keywords: a | b -->` line there gives the entry's keywords (each one's language
  read from it).
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from knowledge.entries import MAX_ENTRIES, Entry, language_of

MAX_FILE_BYTES = 64 * 1024 * 1024
FORMATS = ("jsonl", "csv", "md")
CSV_REQUIRED = ("id", "question", "answer")
CSV_COLUMNS = (*CSV_REQUIRED, "question_zh", "answer_zh", "tags", "product", "mentions",
               "keywords", "keywords_zh")
_ID_COMMENT = re.compile(r"^<!--\s*id:\s*(\S+)\s*-->$")
_KEYWORDS_COMMENT = re.compile(r"^<!--\s*keywords:(.*)-->$")


class KnowledgeFileError(ValueError):
    def __init__(self, path: str | Path, line: int | None, field: str | None, message: str):
        self.path, self.line, self.field = str(path), line, field
        where = f"{path}:{line}" if line else str(path)
        super().__init__(f"{where}: {f'{field}: ' if field else ''}{message}")


def format_of(path: Path, declared: str | None = None) -> str:
    kind = declared or {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".md": "md",
                        ".markdown": "md"}.get(path.suffix.lower(), "")
    if kind not in FORMATS:
        raise KnowledgeFileError(path, None, None, f"unknown format {path.suffix!r}; use "
                                 ".jsonl, .csv or .md (or name the format)")
    return kind


def read_file(path: Path, declared: str | None = None) -> list[Entry]:
    kind = format_of(path, declared)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise KnowledgeFileError(path, None, None, f"cannot read ({exc.strerror})") from None
    if size > MAX_FILE_BYTES:
        raise KnowledgeFileError(path, None, None, f"{size} bytes; at most {MAX_FILE_BYTES}")
    return parse(path.read_bytes(), kind, path)


def parse(data: bytes, kind: str, name: str | Path) -> list[Entry]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise KnowledgeFileError(name, line, None, f"not UTF-8 (byte {exc.start})") from None
    text = text.removeprefix("\ufeff")
    rows = {"jsonl": _jsonl_rows, "csv": _csv_rows, "md": _markdown_rows}[kind](text, name)
    entries: list[Entry] = []
    seen: dict[str, int] = {}
    for line, row in rows:
        entry = _entry(row, name, line)
        if entry.id in seen:
            raise KnowledgeFileError(name, line, "id", f"duplicate id {entry.id!r} (first on "
                                     f"line {seen[entry.id]})")
        seen[entry.id] = line
        entries.append(entry)
        if len(entries) > MAX_ENTRIES:
            raise KnowledgeFileError(name, line, None, f"more than {MAX_ENTRIES} entries")
    if not entries:
        raise KnowledgeFileError(name, None, None, "no entries")
    return entries


def _entry(row: dict[str, Any], name: str | Path, line: int) -> Entry:
    try:
        return Entry.model_validate(row)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(p) for p in error["loc"] if p != "[key]") or None
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown field"
        raise KnowledgeFileError(name, line, field, message) from None


def _jsonl_rows(text: str, name: str | Path) -> list[tuple[int, dict]]:
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise KnowledgeFileError(name, number, None, f"not JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise KnowledgeFileError(name, number, None, "not a JSON object")
        rows.append((number, row))
    return rows


def _split(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split("|") if part.strip()]


def _csv_rows(text: str, name: str | Path) -> list[tuple[int, dict]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = reader.fieldnames or []
    missing = [c for c in CSV_REQUIRED if c not in header]
    if missing:
        raise KnowledgeFileError(name, 1, missing[0], f"missing column (need "
                                 f"{', '.join(CSV_REQUIRED)})")
    unknown = [c for c in header if c not in CSV_COLUMNS]
    if unknown:
        raise KnowledgeFileError(name, 1, unknown[0], "unknown column")
    rows = []
    for record in reader:
        line = reader.line_num
        if None in record or any(v is None for v in record.values()):
            raise KnowledgeFileError(name, line, None, f"{len(header)} columns expected")
        row: dict[str, Any] = {"id": record["id"].strip(),
                               "questions": {"en": _split(record["question"])},
                               "answers": {"en": record["answer"].strip()}}
        if record.get("answer_zh", "").strip():
            row["questions"]["zh"] = _split(record.get("question_zh"))
            row["answers"]["zh"] = record["answer_zh"].strip()
        for key in ("tags", "mentions"):
            if record.get(key):
                row[key] = _split(record[key])
        if record.get("product", "").strip():
            row["product"] = record["product"].strip()
        keywords = {lang: _split(record.get(column)) for lang, column in (
            ("en", "keywords"), ("zh", "keywords_zh")) if column in record}
        if any(keywords.values()):
            row["keywords"] = keywords
        rows.append((line, row))
    return rows


def slug(text: str) -> str:
    words = re.findall(r"[a-z0-9]+", text.lower())
    if words:
        return "-".join(words)[:80].strip("-")
    return "q-" + "".join(f"{ord(c):x}" for c in text.strip()[:12])


def _markdown_rows(text: str, name: str | Path) -> list[tuple[int, dict]]:
    rows: list[tuple[int, dict]] = []
    current: tuple[int, str, list[str]] | None = None
    entry_id: str | None = None
    keywords: dict[str, list[str]] = {}

    def close() -> None:
        if current is None:
            return
        line, question, body = current
        answer = "\n".join(body).strip()
        lang = language_of(question + answer)
        row = {"id": entry_id or slug(question), "questions": {lang: [question]},
               "answers": {lang: answer}}
        if keywords:
            row["keywords"] = keywords
        rows.append((line, row))

    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if stripped.startswith("## "):
            close()
            current, entry_id, keywords = (number, stripped[3:].strip(), []), None, {}
        elif current is not None and not current[2] and (match := _ID_COMMENT.match(stripped)):
            entry_id = match.group(1)
        elif current is not None and not current[2] and (
                match := _KEYWORDS_COMMENT.match(stripped)):
            for word in _split(match.group(1)):
                keywords.setdefault(language_of(word), []).append(word)
        elif current is not None:
            current[2].append(raw)
        elif stripped and not stripped.startswith("#"):
            raise KnowledgeFileError(name, number, None, "text before the first '## question'")
    close()
    return rows
