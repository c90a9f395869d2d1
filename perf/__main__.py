"""`python -m perf run SUITE`."""

from __future__ import annotations

import argparse
import sys

SUITES = {"serving": "perf.serving_suite", "sessions": "perf.sessions_suite",
          "multiturn": "perf.multiturn_suite", "router": "perf.router_suite",
          "lora": "perf.lora_suite", "knowledge": "perf.knowledge_suite",
          "knowledge-serving": "perf.knowledge_serving_suite",
          "dtype": "perf.dtype_suite", "compile": "perf.compile_suite",
          "ingress": "perf.ingress_suite", "filter": "perf.filter_suite",
          "guidellm": "perf.guidellm_suite", "omp-bind": "perf.omp_bind_suite",
          "placement": "perf.placement_suite", "alone": "perf.alone_suite"}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m perf")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run one benchmark suite")
    run.add_argument("suite", choices=sorted(SUITES))
    args = parser.parse_args()
    module = __import__(SUITES[args.suite], fromlist=["run"])
    module.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
