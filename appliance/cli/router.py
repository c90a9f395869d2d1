"""`onlycs router`: train, evaluate and explain the routing decision tree."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from appliance.cli.common import CONFIG, load


def cmd_train(args: argparse.Namespace) -> int:
    from serving.router.train import train

    _print_eval(train(step=lambda m: print(m, file=sys.stderr)))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from serving.router.train import evaluate

    _print_eval(evaluate())
    return 0


def _print_eval(report: dict) -> None:
    print("held-out split of serving/router/data/routing.jsonl")
    for key, value in report.items():
        print(f"  {key:28} {value}")


def cmd_explain(args: argparse.Namespace) -> int:
    from serving.pipeline.decide import build_engine
    from serving.pipeline.ground import knowledge_route

    config = load(args.config)
    engine = build_engine(config)
    # The intent, path and decision as serving makes them (the embedding only when the
    # rules ask for it: "explain" printed the embedding's intent, which serving does not
    # use, until 2026-12-05), and every feature, the embedding's too, for the table.
    served = engine.decide(args.message)
    decision = engine.decide(args.message, full=True)
    print(f"message: {args.message!r}")
    how = "MiniLM embedding" if served.embedded else "n-grams"
    print(f"intent:  {served.intent} ({how}{'' if served.intent_sure else ', unsure'})")
    if (decision.intent, decision.intent_sure) != (served.intent, served.intent_sure):
        print(f"         with the MiniLM embedding: {decision.intent}"
              f"{'' if decision.intent_sure else ', unsure'} (not what serving uses)")
    print("features:")
    for name, value in sorted(decision.features.items()):
        print(f"  {name:24} {value:.4g}")
    for hit in decision.hits:
        print(f"sensitive: {hit.term!r} in list {hit.list_name} -> {hit.action}")
    print("path:")
    for step in served.path:
        sign = ">" if step.went == "then" else "<="
        print(f"  {step.node}: {step.feature} = {step.value:.4g} {sign} {step.threshold:g}")
    answer = None
    if served.tier is not None and config.knowledge.enabled:
        from knowledge.service import KnowledgeService

        answer = KnowledgeService(config.knowledge, read_only=True).answer(
            args.message, served.intent, sure=served.intent_sure)
        print(f"knowledge: {answer.mode}: {answer.choice.reason}")
    print(f"decision: {knowledge_route(served.tier, served.rule, answer).header()}")
    return 0


def register(sub: Any) -> None:
    router = sub.add_parser("router", help="the routing decision tree").add_subparsers(
        dest="action", required=True)
    router.add_parser("train", help="fit classifiers and the rule tree; print held-out scores"
                      ).set_defaults(func=cmd_train)
    router.add_parser("eval", help="held-out routing accuracy and small-tier share"
                      ).set_defaults(func=cmd_eval)
    explain = router.add_parser("explain", parents=[CONFIG],
                                help="features, path and tier for one message")
    explain.add_argument("message")
    explain.set_defaults(func=cmd_explain)
