"""The appliance's one configuration model, loaded from a TOML file.

Every section forbids unknown keys so that a typo in `config.toml` is an error
that names the key, not a silently ignored setting.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from appliance.channel_config import ChannelsConfig

DEFAULT_MODEL_NAME = "smollm2-135m-instruct"


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerConfig(Section):
    host: str = Field("127.0.0.1", description="Address the HTTP endpoint binds to.")
    port: int = Field(8000, ge=1, le=65535, description="TCP port of the HTTP endpoint.")
    docs_enabled: bool = Field(True, description="Serve /openapi.json and Swagger UI at /docs.")
    metrics_enabled: bool = Field(True, description="Serve Prometheus metrics at /metrics.")
    drain_timeout_s: float = Field(
        30.0, gt=0, le=3600, description="How long SIGTERM waits for in-flight requests."
    )
    ready_timeout_s: float = Field(
        900.0, gt=0, description="How long `serve` waits for both engines to become ready."
    )


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
        512, ge=1, description="Admission bound: requests in flight plus queued per tier; "
        "beyond it new requests get 503 with Retry-After.")

    @model_validator(mode="after")
    def _default_within_limit(self) -> LimitsConfig:
        if self.default_max_tokens > self.max_tokens_limit:
            raise ValueError("default_max_tokens must not exceed max_tokens_limit")
        return self


class TierConfig(Section):
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
    cpu_kvcache_space_gib: int = Field(
        2, ge=1, description="CPU profile: KV cache size (VLLM_CPU_KVCACHE_SPACE)."
    )
    cpu_omp_threads_bind: str = Field(
        "all", description="CPU profile: cores for the engine's OpenMP threads: `all` (every "
        "core), or anything VLLM_CPU_OMP_THREADS_BIND takes (`auto`, `0-3`, `nobind`)."
    )
    cpu_engine_wait_s: float | None = Field(
        0.0001, ge=0, le=0.01,
        description="CPU profile: a waiting engine process sleeps this long per check "
        "instead of spinning on sched_yield (vLLM's way burns a core the appliance needs); "
        "unset keeps vLLM's.",
    )
    cpu_grouped_lora: bool = Field(
        True,
        description="CPU profile: LoRA products one matmul per adapter in the batch "
        "(serving/lora_cpu.py) instead of vLLM's copy of the adapter's weights per token; "
        "false keeps vLLM's.",
    )
    num_replicas: int = Field(1, ge=1, description="Ray Serve replicas of this tier.")
    num_gpus: float = Field(0, ge=0, description="GPUs per replica (0 in the CPU profile).")
    engine_args: dict[str, Any] = Field(
        default_factory=dict, description="Extra vLLM engine arguments, passed through as-is."
    )


class SmallTierConfig(TierConfig):
    # A [tiers.small] table that leaves these out keeps the small tier's own defaults.
    enable_lora: bool = Field(True, description="Serve LoRA adapters on this tier.")
    max_num_seqs: int = Field(64, ge=1, description="Sequences batched together by the engine.")


class LargeTierConfig(TierConfig):
    max_num_seqs: int = Field(32, ge=1, description="Sequences batched together by the engine.")


class TiersConfig(Section):
    small: SmallTierConfig = Field(default_factory=SmallTierConfig, description="The cheap tier.")
    large: LargeTierConfig = Field(default_factory=LargeTierConfig,
                                   description="The hard-case tier.")


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


class StoreConfig(Section):
    enabled: bool = Field(True, description="Keep chat conversations, encrypted, on disk.")
    path: Path = Field(Path("var/conversations.db"), description="SQLite database file.")
    master_key_file: Path = Field(
        Path("var/master.key"), description="Hex master key, mode 0600; wraps the data keys.")
    cipher: Literal["aes-256-gcm", "sm4-gcm"] = Field(
        "aes-256-gcm", description="Record cipher; sm4-gcm for national-standard sites.")
    retention_days: float = Field(180, gt=0, description="`conversations purge` deletes older.")


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


class AppConfig(Section):
    profile: Literal["cpu", "gpu"] = Field("cpu", description="Hardware profile.")
    server: ServerConfig = Field(default_factory=ServerConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    models: ModelsConfig = Field(default_factory=ModelsConfig)
    tiers: TiersConfig = Field(default_factory=TiersConfig)
    routing: RoutingConfig = Field(default_factory=RoutingConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    security: SecurityConfig = Field(default_factory=SecurityConfig)
    tls: TLSConfig = Field(default_factory=TLSConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    sessions: SessionsConfig = Field(default_factory=SessionsConfig)
    lora: LoraConfig = Field(default_factory=LoraConfig)
    channels: ChannelsConfig = Field(default_factory=ChannelsConfig)
    ray: RayConfig = Field(default_factory=RayConfig)

    @property
    def auth_required(self) -> bool:
        if self.security.auth != "auto":
            return self.security.auth == "on"
        return self.server.host not in ("127.0.0.1", "localhost", "::1")

    def resolve_paths(self, base: Path) -> AppConfig:
        """Relative paths in a config file are relative to that file's folder."""
        def absolute(path: Path | None) -> Path | None:
            return path if path is None or path.is_absolute() else (base / path).resolve()

        return self.model_copy(update={
            "models": self.models.model_copy(update={"root": absolute(self.models.root)}),
            "logging": self.logging.model_copy(update={"dir": absolute(self.logging.dir)}),
            "security": self.security.model_copy(
                update={"keys_file": absolute(self.security.keys_file)}),
            "tls": self.tls.model_copy(update={"cert_file": absolute(self.tls.cert_file),
                                               "key_file": absolute(self.tls.key_file)}),
            "routing": self.routing.model_copy(update={
                "rules_file": absolute(self.routing.rules_file),
                "sensitive_lists": [w.model_copy(update={"file": absolute(w.file)})
                                    for w in self.routing.sensitive_lists]}),
            "lora": self.lora.model_copy(update={"root": absolute(self.lora.root)}),
            "store": self.store.model_copy(update={
                "path": absolute(self.store.path),
                "master_key_file": absolute(self.store.master_key_file)}),
        })


class ConfigError(Exception):
    """A config file that cannot be used; `problems` lists each with its key path."""

    def __init__(self, path: Path, problems: list[str]):
        self.path = path
        self.problems = problems
        super().__init__(f"{path}: " + "; ".join(problems))


def _format_error(err: Any) -> str:
    key = ".".join(str(p) for p in err["loc"]) or "(top level)"
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        msg = "unknown key"
    return f"{key}: {msg}"


def load_config(path: Path | str) -> AppConfig:
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(path, ["file not found"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, [f"not valid TOML: {exc}"]) from None
    try:
        config = AppConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(path, [_format_error(e) for e in exc.errors()]) from None
    return config.resolve_paths(path.parent.resolve())
