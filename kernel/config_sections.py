"""The sections of the appliance's configuration (one pydantic model each).

Every section forbids unknown keys so that a typo in `config.toml` is an error
that names the key, not a silently ignored setting.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

DEFAULT_MODEL_NAME = "smollm2-135m-instruct"


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerConfig(Section):
    host: str = Field("127.0.0.1", description="Address the HTTP endpoint binds to.")
    port: int = Field(8000, ge=1, le=65535, description="TCP port of the HTTP endpoint.")
    docs_enabled: bool = Field(True, description="Serve /openapi.json and Swagger UI at /docs.")
    public_introspection: bool = Field(
        False, description="With auth on, /docs, /openapi.json and /readyz's details (tiers' "
        "stats, adapter names) still need a key; true serves them to anyone.")
    metrics_enabled: bool = Field(True, description="Serve Prometheus metrics at /metrics.")
    drain_timeout_s: float = Field(
        30.0, gt=0, le=3600, description="How long SIGTERM waits for in-flight requests."
    )
    ready_timeout_s: float = Field(
        900.0, gt=0, description="How long `serve` waits for both engines to become ready."
    )
    ingress: Literal["direct", "proxy"] = Field(
        "direct", description="direct: the router replica listens on the port itself (one "
        "router per node, no proxy hop; Ray's own proxy idles on a free port); proxy: Ray "
        "Serve's HTTP proxy listens and forwards.")


class LimitsConfig(Section):
    default_max_tokens: int = Field(
        256, ge=1, description="Output cap applied when a request sets no max_tokens."
    )
    max_tokens_limit: int = Field(
        2048, ge=1, description="Largest max_tokens a request may ask for."
    )
    max_n: int = Field(4, ge=1, le=16, description="Largest `n` (choices) a request may ask for.")
    max_ongoing_requests_per_tier: int = Field(
        256, ge=1, description="Requests one engine replica accepts at once (continuous batching)."
    )
    max_pending_per_tier: int = Field(
        512, ge=1, description="Admission bound: sequences (prompts x n) in flight plus "
        "queued per tier; beyond it a request waits (admission_wait_s), then gets 503 "
        "with Retry-After.")
    admission_wait_s: float = Field(
        10.0, ge=0, le=600, description="How long a request waits for a place in a full "
        "tier before its 503; places go to whoever asked first (a session refused before "
        "keeps its first refusal's time). 0: refuse at once (a load balancer in front "
        "that retries another node).")
    max_waiting_per_tier: int = Field(
        512, ge=1, description="Requests that may wait for a place in one full tier; "
        "beyond it the newest asker is refused at once.")
    max_prompts: int = Field(
        32, ge=1, description="Prompts one /v1/completions list may hold.")
    max_stop: int = Field(8, ge=1, description="Entries of a `stop` list (each at most 256 "
                          "characters).")
    max_grammar_chars: int = Field(
        16384, ge=256, description="Size of a structured-output regex, grammar, choice "
        "list or JSON schema: each one is compiled on the engine's CPU.")

    @model_validator(mode="after")
    def _default_within_limit(self) -> LimitsConfig:
        if self.default_max_tokens > self.max_tokens_limit:
            raise ValueError("default_max_tokens must not exceed max_tokens_limit")
        return self


class TierConfig(Section):
    enabled: bool = Field(True, description="false: leave this tier out (e.g. one of the "
                          "shipped `small` / `large`).")
    model: str = Field(
        DEFAULT_MODEL_NAME,
        description="A model prepared under [models].root, or an absolute path to a local "
        "HF model folder. Nothing is downloaded.",
    )
    max_model_len: int = Field(2048, ge=128, description="Context length (prompt + output).")
    max_num_seqs: int = Field(64, ge=1, description="Sequences batched together by the engine.")
    enable_prefix_caching: bool = Field(True, description="Reuse KV cache of shared prefixes.")
    enable_lora: bool = Field(False, description="Serve LoRA adapters on this tier.")
    max_lora_rank: int = Field(16, ge=1, le=256, description="Largest adapter rank accepted.")
    max_loras: int = Field(4, ge=1, description="Adapters resident in one batch.")
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field(
        "auto", description="Weight dtype. `auto` on the CPU profile: bfloat16 where the "
        "CPU computes it natively (AVX-512 BF16, AMX, Arm BF16), float32 elsewhere; on GPU: "
        "the model's own dtype."
    )
    cpu_kvcache_space_gib: float | None = Field(
        None, gt=0, description="CPU profile: KV cache size in GiB; unset: sized for "
        "`max_num_seqs` sequences of `cpu_kv_tokens_per_seq` tokens (serving/kv_budget.py)."
    )
    cpu_kv_tokens_per_seq: int = Field(
        512, ge=16, description="CPU profile, KV cache unset: tokens of cache per sequence "
        "(prompt and answer). Sequences that need more wait in the engine's queue; one "
        "sequence always fits `max_model_len`.")
    cpu_omp_threads_bind: str = Field(
        "all", description="CPU profile: cores for the engine's OpenMP threads, one thread "
        "per core: `all` (every core), `auto` (every core but one, left to the router and "
        "Ray), or a list VLLM_CPU_OMP_THREADS_BIND takes (`0-3`; `nobind`: every core)."
    )
    cpu_engine_wait_s: float | None = Field(
        0.0001, ge=0, le=0.01,
        description="CPU profile: a waiting engine process sleeps this long per check "
        "instead of spinning on sched_yield (vLLM's way burns a core the appliance needs); "
        "unset keeps vLLM's.",
    )
    cpu_single_process: bool = Field(
        True,
        description="CPU profile: the model runs inside the engine's scheduler process "
        "(vLLM's `uni` executor) instead of in a worker process of its own: one process "
        "(~0.5 GiB) less per tier and no hand-off between processes at each step; false "
        "keeps vLLM's two processes.",
    )
    cpu_grouped_lora: bool = Field(
        True,
        description="CPU profile: LoRA products one matmul per adapter in the batch "
        "(serving/lora_cpu.py) instead of vLLM's copy of the adapter's weights per token; "
        "false keeps vLLM's.",
    )
    stream_batch_ms: float = Field(
        20, ge=0, le=200,
        description="A streamed answer's pieces go from the tier's replica to the router "
        "in one Ray object per this many ms at most (the first at once); 0: one object "
        "per piece. Each object costs Ray CPU, which comes out of the model's time.")
    share_engine_with: str | None = Field(
        None, description="Serve this tier on another tier's engine (they must name the "
        "same model): one engine's memory and cores less, and the two tiers' requests "
        "batched together. The tier keeps its name, its routing, admission, route header "
        "and router metrics; its own engine, replica and LoRA settings are unused, and the "
        "engine's metrics carry the other tier's name. The shipped `large` shares "
        "`small`'s while both name the same model; \"\": an engine of its own.")
    placement: Literal["replica", "router"] = Field(
        "replica", description="`replica`: the engine runs in a Ray Serve deployment of its "
        "own, and every streamed piece of an answer is a Ray object to the router. "
        "`router`: it runs inside the router replica's process (one replica of the tier, "
        "none of its `resources` or GPUs, at most one such tier), so its output reaches the "
        "router as it reaches vLLM's own API server, with one process and one hop less. "
        "The shipped `small` tier defaults to `router` on the CPU profile wherever that "
        "placement is allowed, `replica` otherwise.")
    num_replicas: int = Field(1, ge=1, description="Ray Serve replicas of this tier.")
    max_replicas_per_node: int | None = Field(
        None, ge=1, description="At most this many of the tier's replicas on one node (1: "
        "a cluster spreads them over its nodes, and one node's loss leaves the others).")
    resources: dict[str, float] = Field(
        default_factory=dict, description="Ray custom resources each replica needs, e.g. "
        "{onlycs_gpu_node = 0.01} for a tier only the nodes started with that resource host.")
    num_gpus: float = Field(0, ge=0, description="GPUs per replica (0 in the CPU profile).")
    engine_args: dict[str, Any] = Field(
        default_factory=dict, description="Extra vLLM engine arguments, passed through as-is."
    )

    @field_validator("share_engine_with")
    @classmethod
    def _empty_is_own(cls, value: str | None) -> str | None:
        return value or None


# What the two shipped tiers start from; a [tiers.<name>] table in the file is laid over
# its tier's entry, so a partial [tiers.small] keeps LoRA on.
TIER_DEFAULTS: dict[str, dict[str, Any]] = {
    "small": {"enable_lora": True, "max_num_seqs": 64, "placement": "router"},
    "large": {"max_num_seqs": 32, "share_engine_with": "small"},
}


def _own_engine_unless_same_model(merged: dict[str, Any], given: dict[str, Any]) -> None:
    """The shipped large tier runs on small's engine while both serve one model; given a
    model of its own (or small another), it gets an engine of its own."""
    large, small = merged.get("large"), merged.get("small")
    if not isinstance(large, dict) or "share_engine_with" in (given.get("large") or {}):
        return
    same = (isinstance(small, dict) and small.get("enabled") is not False
            and small.get("model", DEFAULT_MODEL_NAME) == large.get("model", DEFAULT_MODEL_NAME))
    if not same:
        large.pop("share_engine_with", None)


def _small_engine_in_router_where_allowed(merged: dict[str, Any], given: dict[str, Any],
                                          profile: Any) -> None:
    """The shipped small tier's engine runs in the router's process unless the file asks
    for what that placement cannot give (several replicas, resources or GPUs, another
    tier in the router, another profile than the CPU one); then in a replica, as any
    tier's does unless its table says otherwise."""
    small = merged.get("small")
    if not isinstance(small, dict) or "placement" in _table(given.get("small")):
        return
    elsewhere = any(_table(values).get("placement") == "router"
                    and not _table(merged.get(name)).get("share_engine_with")
                    for name, values in given.items() if name != "small")
    if (profile != "cpu" or elsewhere or small.get("num_replicas", 1) != 1
            or small.get("resources") or small.get("num_gpus")
            or small.get("share_engine_with")):
        small["placement"] = "replica"


def _table(values: Any) -> dict[str, Any]:
    if isinstance(values, TierConfig):
        return values.model_dump(exclude_unset=True)
    return values if isinstance(values, dict) else {}


def tiers_with_defaults(given: Any, profile: Any = "cpu") -> Any:
    """The configured tiers: the shipped two (each with its defaults) plus any the file
    names; `enabled = false` drops one."""
    if not isinstance(given, dict):
        return given
    merged: dict[str, Any] = {name: dict(values) for name, values in TIER_DEFAULTS.items()}
    for name, values in given.items():
        if isinstance(values, TierConfig):
            merged[name] = values
        elif isinstance(values, dict) and isinstance(merged.get(name), dict):
            merged[name] = merged[name] | values
        else:
            merged[name] = values
    _own_engine_unless_same_model(merged, given)
    _small_engine_in_router_where_allowed(merged, given, profile)
    return {name: values for name, values in merged.items()
            if not (isinstance(values, dict) and values.get("enabled") is False)
            and not (isinstance(values, TierConfig) and not values.enabled)}


class ModelsConfig(Section):
    root: Path = Field(Path("var/models"), description="Folder of prepared models.")


class WordList(Section):
    name: str = Field(description="List name, used in metrics and route rule ids.")
    file: Path = Field(description="One term per line; `#` starts a comment.")
    action: Literal["block", "mask", "flag"] = Field(
        description="block: the appliance refuses politely; mask: stars before the model; "
        "flag: count only.")


_SENSITIVE_DIR = (Path(__file__).resolve().parent.parent / "serving" / "router" / "data"
                  / "sensitive")


def _default_lists() -> list[WordList]:
    return [WordList(name="abuse_en", file=_SENSITIVE_DIR / "abuse_en.txt", action="block"),
            WordList(name="abuse_zh", file=_SENSITIVE_DIR / "abuse_zh.txt", action="block"),
            WordList(name="competitors", file=_SENSITIVE_DIR / "competitors.txt",
                     action="flag")]


class RoutingConfig(Section):
    rules_file: Path | None = Field(
        None, description="Routing rule tree (YAML); default: the one shipped, trained by "
        "`onlycs router train`.")
    context_cache_sessions: int = Field(
        1000, ge=1, description="Sessions whose router state is kept (LRU).")
    embed_below: float = Field(
        0.55, gt=0, le=1, description="Embed a message with MiniLM when the cheap intent "
        "classifier's confidence is below this (only if the rules test intent).")
    sensitive_lists: list[WordList] = Field(default_factory=_default_lists,
                                            description="Sensitive-word lists and actions.")


class SecurityConfig(Section):
    auth: Literal["auto", "on", "off"] = Field(
        "auto", description="Require API keys; `auto` = on unless bound to loopback.")
    keys_file: Path = Field(Path("var/keys.json"), description="Hashed API keys (0600).")
    admin_key_file: Path = Field(
        Path("var/admin.key"), description="Where `serve` writes the first admin key (0600) "
        "when the keys file holds none; the CLI's admin commands read it when given no key. "
        "Admin endpoints need an admin key whatever `auth` says.")
    metrics_require_key: bool = Field(
        False, description="Require an API key for /metrics (health endpoints stay open).")
    default_rpm: int = Field(600, ge=1, description="Requests per minute per key.")
    default_tpm: int = Field(
        200_000, ge=1, description="Tokens per minute per key (prompt estimate + max_tokens).")
    max_body_bytes: int = Field(
        1 << 20, ge=1024, description="Larger request bodies get 413 before being read.")


class TLSConfig(Section):
    enabled: bool = Field(False, description="Serve HTTPS only (TLS 1.3 only) on server.port.")
    cert_file: Path | None = Field(None, description="PEM server certificate (chain).")
    key_file: Path | None = Field(None, description="PEM private key of the certificate.")

    @model_validator(mode="after")
    def _files_when_enabled(self) -> TLSConfig:
        if self.enabled and (self.cert_file is None or self.key_file is None):
            raise ValueError("cert_file and key_file are required when enabled = true")
        return self


class Persona(Section):
    system: str = Field(description="System prompt that sets the agent's voice and role.")
    greeting: str = Field("", description="Put before a kb or suggest answer.")
    closing: str = Field("", description="Put after a kb or suggest answer.")


def _default_personas() -> dict[str, Persona]:
    return {
        "formal": Persona(system="You are Aria, a formal and precise customer-service agent "
                          "of Lumen Home, a lighting shop. Answer politely and concisely."),
        "friendly": Persona(system="You are Sunny, a warm and cheerful helper at Lumen Home, "
                            "a lighting shop. Keep answers short and friendly."),
        "game_npc": Persona(system="You are Old Tomas, the lamplighter of the village of "
                            "Lumen. Stay in character and speak like a storyteller."),
    }


class SessionsConfig(Section):
    personas: dict[str, Persona] = Field(default_factory=_default_personas,
                                         description="Named system-prompt presets.")
    history_messages: int = Field(
        40, ge=0, description="Stored messages of a session put before a new one (0: none).")
    history_chars: int = Field(
        4000, ge=0, description="Trim the oldest history past this size (fits the context).")


class LoraConfig(Section):
    root: Path = Field(Path("var/adapters"), description="Adapters may only be loaded from "
                       "folders inside this root.")
    tier: str = Field("small", description="The tier adapters load into (it needs "
                      "enable_lora); requests name them as model `<tier>:<adapter>`.")


class StoreConfig(Section):
    enabled: bool = Field(True, description="Keep chat conversations, encrypted, on disk.")
    backend: Literal["sqlite", "postgresql"] = Field(
        "sqlite", description="sqlite: one file on this box (the single-box default); "
        "postgresql: one server every node's router replicas share (clusters).")
    path: Path = Field(Path("var/conversations.db"), description="SQLite database file.")
    postgresql_dsn: str = Field(
        "", description="libpq connection string of the PostgreSQL store, without the "
        "password, e.g. 'host=10.0.0.1 dbname=onlycs user=onlycs sslmode=verify-full'.")
    postgresql_password_file: Path | None = Field(
        None, description="File holding the PostgreSQL password (mode 0600); unset for "
        "peer or certificate authentication.")
    master_key_file: Path = Field(
        Path("var/master.key"), description="Hex master key, mode 0600; wraps the data keys.")
    cipher: Literal["aes-256-gcm", "sm4-gcm"] = Field(
        "aes-256-gcm", description="Record cipher; sm4-gcm for national-standard sites.")
    retention_days: float = Field(180, gt=0, description="`conversations purge` deletes older.")
    busy_timeout_s: float = Field(
        2.0, gt=0, le=60, description="How long a write waits for a store another process "
        "holds (`purge`, `rotate-key`); then the request gets 503 with Retry-After.")

    @model_validator(mode="after")
    def _postgresql_named(self) -> StoreConfig:
        if self.backend == "postgresql":
            if not self.postgresql_dsn.strip():
                raise ValueError("store.postgresql_dsn: backend \"postgresql\" needs a "
                                 "connection string")
            if "password" in self.postgresql_dsn.lower():
                raise ValueError("store.postgresql_dsn: holds a password; put it in "
                                 "store.postgresql_password_file (the config is not secret)")
        return self


class LoggingConfig(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Log level.")
    encoding: Literal["JSON", "TEXT"] = Field(
        "JSON", description="JSON lines (with the request id) or plain text.")
    dir: Path | None = Field(
        None, description="Also write size-rotated log files here (stderr always).")
    max_bytes: int = Field(100 * 2**20, ge=2**16, description="Rotate a log file at this size.")
    backup_count: int = Field(5, ge=1, description="Rotated files kept per log.")
    log_prompts: bool = Field(
        False, description="Log prompt text (vLLM request logging). Off: conversations are "
        "customer data.")


class RayConfig(Section):
    address: str = Field(
        "local", description="`local`: start a private Ray instance with the appliance. "
        "`auto` or `HOST:PORT`: join a running cluster (systemd/onlycs-ray-head.service), "
        "so tier replicas can be placed on worker nodes.")
    router_resources: dict[str, float] = Field(
        default_factory=dict, description="Ray custom resources the router replica needs: on "
        "a cluster {onlycs_head = 0.01} keeps it on the head, where the API's address, "
        "certificate and the store are (the ray role gives the head that resource).")


class KnowledgeConfig(Section):
    """The served knowledge base: answers about the shop's facts come from it."""

    enabled: bool = Field(True, description="false: no retrieval; every request is `open`.")
    seed_file: Path | None = Field(
        None, description="The knowledge base published as version 1 when `dir` holds none "
        "(JSONL, CSV or Markdown); unset: the shipped Lumen Home knowledge base.")
    dir: Path = Field(Path("var/kb"), description="Published versions live here (one file "
                      "each, and CURRENT naming the one in force).")
    dense: bool = Field(True, description="Fuse the multilingual embedder with BM25 "
                        "(false: BM25 alone).")
    kb_similarity: float = Field(0.92, ge=0, le=1, description="Dense similarity an entry "
                                 "about no named product needs for a verbatim (kb) answer.")
    kb_margin: float = Field(0.005, ge=0, le=1, description="Lead over the next entry a kb "
                             "answer needs.")
    grounded_similarity: float = Field(0.88, ge=0, le=1, description="Below it, no entry "
                                       "is relevant: a fact question is abstained.")
    grounded_entries: int = Field(3, ge=1, le=10, description="Entries put in a grounded "
                                  "prompt.")
    keyword_similarity: float = Field(
        0.83, ge=0, le=1, description="Below grounded_similarity, the one entry about no "
        "named product whose keywords a question says is still offered from this dense "
        "similarity up (entries without keywords: never).")
    suggest: bool = Field(True, description="Relevant entries about no named product or "
                          "city, none decisive: reply with them (each entry's question and "
                          "answer) and the hand-off, no engine. false: the tier answers from "
                          "them, fact-guarded.")
    suggest_en: str = Field(
        "I'm not sure which of these you mean, so here is what I know:\n{entries}\nIf none "
        "of them answers your question, I can connect you with a colleague: just say "
        "\"human\".", description="The suggest reply in English; {entries} is replaced by "
        "the entries, one per line.")
    suggest_zh: str = Field("我不确定您问的是哪一项，以下信息供参考：\n{entries}\n"
                            "如果都不是您要问的，我可以为您转接人工客服，请回复“人工”。",
                            description="The suggest reply in Chinese; {entries} as above.")
    history_turns: int = Field(2, ge=0, le=10, description="Earlier user turns of the "
                               "session read for names a follow-up leaves out.")
    abstain_en: str = Field(
        "I'm sorry, I don't have that information. I can connect you with a colleague who "
        "can help: just say \"human\".", description="The abstain reply in English.")
    abstain_zh: str = Field("抱歉，我暂时没有这方面的信息。如需帮助，我可以为您转接人工客服，"
                            "请回复“人工”。", description="The abstain reply in Chinese.")

    @field_validator("suggest_en", "suggest_zh")
    @classmethod
    def _has_entries(cls, value: str) -> str:
        if "{entries}" not in value:
            raise ValueError("must contain {entries}, where the offered entries go")
        return value
