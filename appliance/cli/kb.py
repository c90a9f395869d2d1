"""`onlycs kb`: import, list, search, explain and evaluate the served knowledge base.

`import` and `rollback` write a new version (or point at an old one) in `knowledge.dir`; a
running appliance serves it within a second, without a restart.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from appliance.cli.common import CONFIG, REMOTE, load
from appliance.cli.lora import admin_client


def _service(args: argparse.Namespace):
    from knowledge.service import KnowledgeService

    return KnowledgeService(load(args.config).knowledge, read_only=True)


def cmd_import(args: argparse.Namespace) -> int:
    from knowledge.files import KnowledgeFileError, read_file
    from knowledge.versions import VersionStore

    config = load(args.config).knowledge
    try:
        entries = read_file(args.file, args.format)
    except KnowledgeFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        print("nothing was imported; the version in force keeps serving", file=sys.stderr)
        return 2
    store = VersionStore(config.dir)
    if args.merge and store.current_version() is not None:
        current = {e.id: e for e in store.load(store.current_version() or 0).entries}
        current.update({e.id: e for e in entries})
        entries = list(current.values())
    version = store.publish(entries)
    print(f"published version {version}: {len(entries)} entries from {args.file}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    kb = _service(args).snapshot().kb
    if args.json:
        print(json.dumps({"version": kb.version, "entries": [
            e.model_dump(exclude_defaults=True) for e in kb.entries]}, ensure_ascii=False))
        return 0
    print(f"version {kb.version}: {len(kb)} entries")
    for entry in kb.entries:
        first = entry.questions[entry.languages[0]][0]
        print(f"  {entry.id:36} {'+'.join(entry.languages):6} {first}")
    return 0


def _hits(args: argparse.Namespace) -> tuple[Any, Any]:
    service = _service(args)
    return service, service.answer(args.text, args.intent, args.context, top_k=args.top)


def cmd_search(args: argparse.Namespace) -> int:
    _, answer = _hits(args)
    hits = [{"id": h.entry.id, "score": round(h.score, 4), "dense": round(h.dense, 4),
             "lexical": round(h.lexical, 4), "eligible": h.eligible,
             "answer": h.entry.answer(answer.lang)} for h in answer.hits]
    if args.json:
        print(json.dumps({"version": answer.version, "hits": hits}, ensure_ascii=False))
        return 0
    for rank, hit in enumerate(hits, start=1):
        note = "" if hit["eligible"] else "  (about a name the text does not mention)"
        print(f"{rank:2}. {hit['id']:36} {hit['score']:.4f}{note}\n    {hit['answer']}")
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    service, answer = _hits(args)
    print(f"text:      {args.text!r} ({answer.lang})")
    print(f"version:   {answer.version}")
    print(f"retrieval: {answer.seconds * 1000:.1f} ms, dense weight "
          f"{service.snapshot().retriever.dense_weight}")
    for hit in answer.hits:
        print(f"  {hit.entry.id:36} score {hit.score:.4f} = dense {hit.dense:.4f} & lexical "
              f"{hit.lexical:.4f}{'' if hit.eligible else '  [other subject]'}")
    print(f"mode:      {answer.mode}: {answer.choice.reason}")
    if answer.sources():
        print(f"sources:   {', '.join(answer.sources())}")
    return 0


def cmd_versions(args: argparse.Namespace) -> int:
    from knowledge.versions import VersionStore

    store = VersionStore(load(args.config).knowledge.dir)
    current = store.current_version()
    for version in store.versions():
        print(f"{'*' if version == current else ' '} v{version}")
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    from knowledge.versions import VersionStore

    store = VersionStore(load(args.config).knowledge.dir)
    try:
        store.point(args.version)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"version {args.version} is in force")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from knowledge.evaluate import evaluate
    from knowledge.heldout import HELDOUT
    from knowledge.heldout import load as load_questions

    service = _service(args)
    kb = service.snapshot().kb
    replies = (service.abstain_text("en"), service.abstain_text("zh"))
    openings = tuple(t.split("{entries}")[0].strip()
                     for t in (service.config.suggest_en, service.config.suggest_zh))
    questions = load_questions(args.questions or HELDOUT)
    reports = {}
    with admin_client(args) as client:
        client.http.timeout = 120
        for grounding in (True, False) if args.both else (not args.no_grounding,):
            label = "grounding on" if grounding else "grounding off"
            print(f"{label}: {len(questions)} questions", file=sys.stderr)
            reports[label] = evaluate(client.http, kb, questions, model=args.model,
                                      grounding=grounding, abstain_replies=replies,
                                      offer_openings=openings,
                                      progress=lambda m: print(m, file=sys.stderr))
    for label, report in reports.items():
        print(f"== {label}")
        print(f"  {'':6} {'answerable':>10} {'accuracy':>9} {'offered':>8} {'wrong-fact':>10} "
              f"{'unanswerable':>12} {'abst.recall':>11} {'abst.prec':>9} {'declined':>9}")
        for lang in ("en", "zh", "all"):
            r = report.get(lang)
            if r is None:
                continue
            print(f"  {lang:6} {r['answerable']:>10} {_pct(r['accuracy']):>9} "
                  f"{_pct(r['right_offered']):>8} {_pct(r['wrong_fact_rate']):>10} "
                  f"{r['unanswerable']:>12} {_pct(r['abstention_recall']):>11} "
                  f"{_pct(r['abstention_precision']):>9} {_pct(r['declined']):>9}")
        print("  offered: right by a suggest reply (entries offered); declined: abstained or "
              "offered with the hand-off")
        print("  modes: " + ", ".join(f"{m} {_pct(s)}" for m, s in report["modes"].items()))
        print("  latency p50: " + ", ".join(f"{m} {s * 1000:.0f} ms"
                                            for m, s in report["latency_p50_s"].items()))
    if args.json:
        args.json.write_text(json.dumps(reports, indent=2))
    return 0


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def register(sub: Any) -> None:
    kb = sub.add_parser("kb", help="the served knowledge base").add_subparsers(
        dest="action", required=True)
    imp = kb.add_parser("import", parents=[CONFIG], help="publish a knowledge-base file "
                        "(JSONL, CSV, Markdown FAQ) as a new version")
    imp.add_argument("file", type=Path)
    imp.add_argument("--format", choices=("jsonl", "csv", "md"))
    imp.add_argument("--merge", action="store_true",
                     help="add to the version in force (same id: replaced) instead of "
                     "replacing it")
    imp.set_defaults(func=cmd_import)
    listing = kb.add_parser("list", parents=[CONFIG], help="entries of the version in force")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=cmd_list)
    query = argparse.ArgumentParser(add_help=False, parents=[CONFIG])
    query.add_argument("text")
    query.add_argument("--top", type=int, default=5)
    query.add_argument("--context", default="", help="earlier turns of the session")
    query.add_argument("--intent", help="the router's intent (default: none given)")
    search = kb.add_parser("search", parents=[query], help="ranked entries with scores")
    search.add_argument("--json", action="store_true")
    search.set_defaults(func=cmd_search)
    kb.add_parser("explain", parents=[query], help="retrieval scores, the mode and why"
                  ).set_defaults(func=cmd_explain)
    kb.add_parser("versions", parents=[CONFIG], help="published versions (* in force)"
                  ).set_defaults(func=cmd_versions)
    back = kb.add_parser("rollback", parents=[CONFIG], help="put an earlier version in force")
    back.add_argument("version", type=int)
    back.set_defaults(func=cmd_rollback)
    remote = REMOTE
    ev = kb.add_parser("eval", parents=[remote], help="held-out questions through a running "
                       "appliance: accuracy, wrong facts, abstention, modes")
    ev.add_argument("--questions", type=Path, help="JSONL of {question, lang, entry}")
    ev.add_argument("--model", default="auto")
    ev.add_argument("--no-grounding", action="store_true")
    ev.add_argument("--both", action="store_true", help="with and without grounding")
    ev.add_argument("--json", type=Path, help="also write the report here")
    ev.set_defaults(func=cmd_eval)
