"""The appliance's one configuration model, loaded from a TOML file (sections in
kernel/config_sections.py)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator

from kernel.channel_config import ChannelsConfig
from kernel.config_sections import (
    DEFAULT_MODEL_NAME,
    TIER_DEFAULTS,
    KnowledgeConfig,
    LimitsConfig,
    LoggingConfig,
    LoraConfig,
    ModelsConfig,
    Persona,
    RayConfig,
    RoutingConfig,
    Section,
    SecurityConfig,
    ServerConfig,
    SessionsConfig,
    StoreConfig,
    TierConfig,
    TLSConfig,
    WordList,
    tiers_with_defaults,
)

__all__ = [
    "DEFAULT_MODEL_NAME", "TIER_DEFAULTS", "TIER_NAME", "AppConfig", "ChannelsConfig",
    "ConfigError", "KnowledgeConfig", "LimitsConfig", "LoggingConfig", "LoraConfig",
    "ModelsConfig", "Persona",
    "RayConfig", "RoutingConfig", "Section", "SecurityConfig", "ServerConfig", "SessionsConfig",
    "StoreConfig", "TLSConfig", "TierConfig", "WordList", "load_config", "tiers_with_defaults",
]

TIER_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


class AppConfig(Section):
    profile: Literal["cpu", "gpu"] = Field("cpu", description="Hardware profile.")
    server: ServerConfig = Field(default_factory=ServerConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    models: ModelsConfig = Field(default_factory=ModelsConfig)
    tiers: dict[str, TierConfig] = Field(
        default_factory=lambda: {name: TierConfig(**values)
                                 for name, values in TIER_DEFAULTS.items()},
        description="Model tiers by name; the router's rules, readiness, metrics and the "
        "CLI take the names from here. Ships `small` and `large`.")
    routing: RoutingConfig = Field(default_factory=RoutingConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    security: SecurityConfig = Field(default_factory=SecurityConfig)
    tls: TLSConfig = Field(default_factory=TLSConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    sessions: SessionsConfig = Field(default_factory=SessionsConfig)
    lora: LoraConfig = Field(default_factory=LoraConfig)
    channels: ChannelsConfig = Field(default_factory=ChannelsConfig)
    ray: RayConfig = Field(default_factory=RayConfig)
    knowledge: KnowledgeConfig = Field(default_factory=KnowledgeConfig)

    @model_validator(mode="before")
    @classmethod
    def _tier_defaults(cls, raw: Any) -> Any:
        if isinstance(raw, dict):
            raw = {**raw, "tiers": tiers_with_defaults(raw.get("tiers", {}),
                                                       raw.get("profile", "cpu"))}
        return raw

    @model_validator(mode="after")
    def _tiers_consistent(self) -> AppConfig:
        if not self.tiers:
            raise ValueError("tiers: at least one tier must be enabled")
        for name in self.tiers:
            if not TIER_NAME.match(name) or name == "auto":
                raise ValueError(f"tiers.{name}: a tier name is lower-case letters, digits, "
                                 "- and _, and not `auto`")
        if self.lora.tier not in self.tiers:
            raise ValueError(f"lora.tier: {self.lora.tier!r} is not a configured tier "
                             f"({', '.join(self.tiers)})")
        for name, tier in self.tiers.items():
            if tier.share_engine_with is not None:
                self._check_shared(name, tier)
        self._check_router_engine()
        return self

    def _check_router_engine(self) -> None:
        placed = [n for n in self.engine_tiers if self.tiers[n].placement == "router"]
        if len(placed) > 1:
            raise ValueError(f"tiers.{placed[1]}.placement: only one engine runs in the "
                             f"router's process, and {placed[0]!r} already does")
        for name in placed:
            tier, where = self.tiers[name], f"tiers.{name}"
            if tier.num_replicas != 1:
                raise ValueError(f"{where}.placement: `router` runs one engine in the one "
                                 f"router replica; num_replicas is {tier.num_replicas}")
            if tier.resources or tier.num_gpus:
                raise ValueError(f"{where}.placement: `router` places the engine where the "
                                 "router is: leave resources and num_gpus unset (or use "
                                 "`replica`)")

    def _check_shared(self, name: str, tier: TierConfig) -> None:
        where, owner = f"tiers.{name}.share_engine_with", tier.share_engine_with
        if owner not in self.tiers or owner == name:
            raise ValueError(f"{where}: {owner!r} is not another configured tier "
                             f"({', '.join(t for t in self.tiers if t != name)})")
        if self.tiers[owner].share_engine_with is not None:
            raise ValueError(f"{where}: {owner!r} itself runs on "
                             f"{self.tiers[owner].share_engine_with!r}'s engine: name that one")
        if self.tiers[owner].model != tier.model:
            raise ValueError(f"{where}: {owner!r} serves {self.tiers[owner].model!r}, this "
                             f"tier {tier.model!r}: only tiers of one model share an engine")
        if name == self.lora.tier:
            raise ValueError(f"{where}: adapters load into this tier (lora.tier): it needs "
                             "an engine of its own")

    def engine_tier(self, name: str) -> str:
        """The tier whose engine serves `name`."""
        return self.tiers[name].share_engine_with or name

    @property
    def engine_tiers(self) -> tuple[str, ...]:
        """The tiers that run an engine (a deployment) of their own."""
        return tuple(n for n, t in self.tiers.items() if t.share_engine_with is None)

    @property
    def router_engine(self) -> str | None:
        """The engine tier that runs inside the router's process (`placement = "router"`)."""
        return next((n for n in self.engine_tiers if self.tiers[n].placement == "router"),
                    None)

    @property
    def tier_names(self) -> tuple[str, ...]:
        return tuple(self.tiers)

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
                update={"keys_file": absolute(self.security.keys_file),
                        "admin_key_file": absolute(self.security.admin_key_file)}),
            "tls": self.tls.model_copy(update={"cert_file": absolute(self.tls.cert_file),
                                               "key_file": absolute(self.tls.key_file)}),
            "routing": self.routing.model_copy(update={
                "rules_file": absolute(self.routing.rules_file),
                "sensitive_lists": [w.model_copy(update={"file": absolute(w.file)})
                                    for w in self.routing.sensitive_lists]}),
            "lora": self.lora.model_copy(update={"root": absolute(self.lora.root)}),
            "channels": self.channels.model_copy(update={
                "session_secret_file": absolute(self.channels.session_secret_file)}),
            "knowledge": self.knowledge.model_copy(update={
                "dir": absolute(self.knowledge.dir),
                "seed_file": absolute(self.knowledge.seed_file)}),
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
