"""The appliance's Prometheus metrics, shared by every process of the Ray cluster.

All Ray Serve replicas on a node write to one `PROMETHEUS_MULTIPROC_DIR` (set by the
launcher before Ray starts), and the router's `/metrics` aggregates the files, so a
counter is the sum over every replica and process. Imports only prometheus_client.
"""

from __future__ import annotations

import os
import re

import psutil
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.registry import Collector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
PREFIX = "onlycs_"

if os.environ.get(MULTIPROC_ENV):
    # The launcher makes the folder on the head; a replica on another node of a cluster
    # gets the same path and must make it there before the first metric writes a file.
    os.makedirs(os.environ[MULTIPROC_ENV], exist_ok=True)

# Latencies of a CPU-or-GPU LLM request: from tens of ms to minutes.
REQUEST_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120, 300)
TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30)
TOKEN_LATENCY_BUCKETS = (0.005, 0.01, 0.02, 0.04, 0.08, 0.15, 0.3, 0.6, 1.2, 2.5)
# The router's decision has a 2 ms budget: resolve well below and around it.
DECISION_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.05)

REQUESTS = Counter(
    "onlycs_requests", "HTTP API requests answered, by endpoint, tier and status code.",
    ["endpoint", "tier", "status"])
REQUEST_DURATION = Histogram(
    "onlycs_request_duration_seconds", "End-to-end API request latency (to the last byte).",
    ["endpoint", "tier"], buckets=REQUEST_BUCKETS)
IN_FLIGHT = Gauge(
    "onlycs_requests_in_flight", "API requests being answered now, by tier.",
    ["tier"], multiprocess_mode="livesum")
WAITING = Gauge(
    "onlycs_requests_waiting", "API requests waiting for a place in a full tier, by tier.",
    ["tier"], multiprocess_mode="livesum")
ROUTER_DECISION = Histogram(
    "onlycs_router_decision_seconds", "Time the router takes to choose a tier.",
    buckets=DECISION_BUCKETS)
ROUTING_DECISIONS = Counter(
    "onlycs_routing_decisions", "Routing decisions, by chosen tier and rule id.",
    ["tier", "rule"])

SENSITIVE_HITS = Counter(
    "onlycs_sensitive_word_hits", "Sensitive-word matches, by list and action.",
    ["list", "action"])
CONTEXT_CACHE = Counter(
    "onlycs_context_cache_lookups", "Router context-cache lookups, by result (hit/miss).",
    ["result"])
STORE_CORRUPT = Counter(
    "onlycs_store_corrupt_records",
    "Stored records that failed authentication and were left out of a session's history.",
)
STORE_FULL = Counter(
    "onlycs_store_full",
    "Turns refused because the conversation store's disk was full (nothing acknowledged).",
)
BLOCKED = Counter(
    "onlycs_blocked_requests", "Requests refused by the appliance itself (sensitive words).",
    ["list"])

ADAPTER_EVENTS = Counter(
    "onlycs_adapter_events", "LoRA adapter loads, unloads and default changes, by result.",
    ["event", "result"])
ADAPTER_REQUESTS = Counter(
    "onlycs_adapter_requests", "Requests served with a LoRA adapter, by adapter.", ["adapter"])
ADAPTER_DEFAULT = Gauge(
    "onlycs_adapter_default_info", "1 for the small tier's default adapter, 0 for others.",
    ["adapter"], multiprocess_mode="max")

TTFT = Histogram(
    "onlycs_time_to_first_token_seconds", "Engine time to first token.",
    ["tier"], buckets=TTFT_BUCKETS)
INTER_TOKEN = Histogram(
    "onlycs_inter_token_latency_seconds", "Engine time between output tokens.",
    ["tier"], buckets=TOKEN_LATENCY_BUCKETS)
PROMPT_TOKENS = Counter(
    "onlycs_prompt_tokens", "Prompt tokens processed, by tier.", ["tier"])
PROMPT_CACHED_TOKENS = Counter(
    "onlycs_prompt_cached_tokens", "Prompt tokens served from the prefix cache.", ["tier"])
GENERATION_TOKENS = Counter(
    "onlycs_generation_tokens", "Output tokens generated, by tier.", ["tier"])
ENGINE_RUNNING = Gauge(
    "onlycs_engine_requests_running", "Sequences the engines are decoding now.",
    ["tier"], multiprocess_mode="livesum")
ENGINE_WAITING = Gauge(
    "onlycs_engine_requests_waiting", "Requests queued inside the engines.",
    ["tier"], multiprocess_mode="livesum")
KV_CACHE_USAGE = Gauge(
    "onlycs_engine_kv_cache_usage_ratio", "Fraction of KV-cache blocks in use (max replica).",
    ["tier"], multiprocess_mode="livemax")
ENGINE_ABORTS = Counter(
    "onlycs_engine_aborted_requests", "Generations aborted because the client went away.",
    ["tier"])
ENGINE_UP = Gauge(
    "onlycs_engine_up", "1 while a tier's engine replica is started and healthy.",
    ["tier"], multiprocess_mode="livesum")
CHANNEL_MESSAGES = Counter(
    "onlycs_channel_messages", "Chat-platform callbacks by channel and outcome (replied "
    "inline or later, duplicate, ignored, rejected, delivery_failed).", ["channel", "outcome"])
KB_ANSWERS = Counter(
    "onlycs_knowledge_answers", "Chat answers by knowledge-base mode (kb, suggest, grounded, "
    "abstain, open).", ["mode"])
KB_CORRECTIONS = Counter(
    "onlycs_knowledge_fact_guard_corrections", "Answers the fact guard replaced or stopped, by "
    "what took their place (entry: an entry's answer; offered: the entries offered with the "
    "hand-off; abstain: the abstain reply; "
    "stopped: an open answer ended before a number no source states, the abstain reply after).",
    ["replacement"])
KB_RETRIEVAL = Histogram(
    "onlycs_knowledge_retrieval_seconds", "Knowledge-base retrieval and mode choice per request.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.25, 1))
KB_VERSION = Gauge(
    "onlycs_knowledge_version_info", "1 for the knowledge-base version a replica serves.",
    ["version"], multiprocess_mode="max")
KB_ENTRIES = Gauge(
    "onlycs_knowledge_entries", "Entries in the knowledge-base version in force.",
    multiprocess_mode="max")
BUILD_INFO = Gauge(
    "onlycs_build_info", "Constant 1, labelled with version and profile.",
    ["version", "profile"], multiprocess_mode="max")

TIER_FAMILIES = (TTFT, INTER_TOKEN, PROMPT_TOKENS, PROMPT_CACHED_TOKENS, GENERATION_TOKENS,
                 ENGINE_RUNNING, ENGINE_WAITING, KV_CACHE_USAGE, ENGINE_ABORTS, ENGINE_UP)


class _OnlyOurs(Collector):
    """The multiprocess files also hold vLLM's and Ray's own series: keep ours only."""

    def __init__(self, path: str):
        self._registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(self._registry, path=path)

    def collect(self):
        for family in self._registry.collect():
            if family.name.startswith(PREFIX):
                yield family


_LIVE_GAUGE_FILE = re.compile(r"^gauge_live\w*?_(\d+)\.db$")


def _forget_dead_processes(path: str) -> None:
    """A replica killed without cleanup leaves its live gauges (e.g. in-flight) behind."""
    for name in os.listdir(path):
        match = _LIVE_GAUGE_FILE.match(name)
        if match and not psutil.pid_exists(int(match[1])):
            multiprocess.mark_process_dead(int(match[1]), path)


def render(extra: list[Collector] | None = None) -> bytes:
    """The Prometheus text exposition of every process's onlycs_ metrics."""
    registry = CollectorRegistry()
    path = os.environ.get(MULTIPROC_ENV)
    if path:
        _forget_dead_processes(path)
        registry.register(_OnlyOurs(path))
    for collector in extra or []:
        registry.register(collector)
    return generate_latest(registry)
