"""Builds the Ray Serve application from the config: the ingress and one deployment per
configured tier."""

from __future__ import annotations

from typing import Any

from ray import serve
from ray.serve import Application
from ray.serve.config import RequestRouterConfig

from kernel.config import AppConfig, TierConfig
from models.registry import model_dir
from serving.cpu_dtype import cpu_auto_dtype
from serving.cpu_threads import BIND_ENV, omp_threads_bind
from serving.ingress.deployment import make_ingress_deployment
from serving.kv_budget import kv_cache_bytes
from serving.model_deployment import DEFAULT_ENGINE, ModelServer
from serving.vllm_plugin import ENV as ENGINE_WAIT_ENV
from serving.vllm_plugin import GROUPED_LORA_ENV, SHARED_GLOO_ENV

INGRESS_MAX_ONGOING = 4096


def engine_options(config: AppConfig, name: str, tier: TierConfig) -> dict[str, Any]:
    """vLLM engine arguments for one tier; `engine_args` in the config wins."""
    model = model_dir(config, tier)
    dtype = cpu_auto_dtype() if config.profile == "cpu" and tier.dtype == "auto" else tier.dtype
    options: dict[str, Any] = {
        "model": str(model),
        "served_model_name": name,
        "max_model_len": tier.max_model_len,
        "max_num_seqs": tier.max_num_seqs,
        "enable_prefix_caching": tier.enable_prefix_caching,
        "dtype": dtype,
        # vLLM's request log holds prompt text: customer data, off unless asked for.
        "enable_log_requests": config.logging.log_prompts,
    }
    if config.profile == "cpu":
        options["kv_cache_memory_bytes"] = kv_cache_bytes(tier, model, dtype)
        if tier.cpu_single_process:
            options["distributed_executor_backend"] = "uni"
    if tier.enable_lora:
        options |= {"enable_lora": True, "max_lora_rank": tier.max_lora_rank,
                    "max_loras": tier.max_loras}
    return options | tier.engine_args


def tier_env(config: AppConfig, tier: TierConfig) -> dict[str, str]:
    # AOT compile artifacts of this vLLM and torch fail to load ("'function' object has no
    # attribute 'finalize_loading'"), so every start compiled again; vLLM's older compile
    # cache loads (a compiled tier's warm start: 52 s instead of 205 s). A lone engine's
    # 13 gloo groups share one device: 100 wake-ups a second instead of 1,300.
    env = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "VLLM_USE_AOT_COMPILE": "0",
           SHARED_GLOO_ENV: "1"}
    if config.profile == "cpu":
        env[BIND_ENV] = omp_threads_bind(tier.cpu_omp_threads_bind)
        if tier.cpu_single_process:
            # vLLM's CPU platform swaps `uni` for `mp` unless this says the engine may
            # share a process with the model (AsyncLLM keeps its EngineCore process anyway).
            env["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
        if tier.cpu_engine_wait_s is not None:
            env[ENGINE_WAIT_ENV] = str(tier.cpu_engine_wait_s)
        if tier.enable_lora and tier.cpu_grouped_lora:
            env[GROUPED_LORA_ENV] = "1"
    return env


def tier_deployment(config: AppConfig, name: str, engine_cls: str) -> Application:
    tier: TierConfig = config.tiers[name]
    deployment = serve.deployment(ModelServer).options(
        name=name,
        request_router_config=RequestRouterConfig(
            request_router_class="serving.affinity.SessionAffinityRequestRouter"),
        num_replicas=tier.num_replicas,
        **({"max_replicas_per_node": tier.max_replicas_per_node}
           if tier.max_replicas_per_node else {}),
        max_ongoing_requests=config.limits.max_ongoing_requests_per_tier,
        graceful_shutdown_timeout_s=config.server.drain_timeout_s,
        health_check_period_s=10,
        health_check_timeout_s=60,
        ray_actor_options={"num_cpus": 0, "num_gpus": tier.num_gpus,
                           "resources": tier.resources,
                           "runtime_env": {"env_vars": tier_env(config, tier)}},
    )
    return deployment.bind(*host_args(config, name, engine_cls))


def host_args(config: AppConfig, name: str, engine_cls: str) -> tuple[Any, ...]:
    """`EngineHost`'s arguments for the engine of tier `name`."""
    tier = config.tiers[name]
    guests = tuple(n for n in config.tier_names if config.tiers[n].share_engine_with == name)
    # In the router's process the pieces need no batching: no Ray object carries them.
    batch_s = 0.0 if tier.placement == "router" else tier.stream_batch_ms / 1000
    return name, engine_options(config, name, tier), engine_cls, batch_s, guests


def build_app(config: AppConfig, engine_cls: str = DEFAULT_ENGINE) -> Application:
    own = config.router_engine
    # vLLM's logging setup (a dictConfig) closes every handler in the process, Ray Serve's
    # buffered log of the router replica too: the router's own log would end there.
    env = ({"env_vars": tier_env(config, config.tiers[own]) | {"VLLM_CONFIGURE_LOGGING": "0"}}
           if own else {})
    ingress = make_ingress_deployment(config).options(
        max_ongoing_requests=INGRESS_MAX_ONGOING,
        graceful_shutdown_timeout_s=config.server.drain_timeout_s,
        ray_actor_options={"num_cpus": 0, "resources": config.ray.router_resources,
                           **({"runtime_env": env} if env else {})},
    )
    # A tier that shares another's engine has no deployment: the ingress hands its
    # requests to that tier's; nor has the one whose engine the router runs itself.
    handles = {name: tier_deployment(config, name, engine_cls)
               for name in config.engine_tiers if name != own}
    return ingress.bind(config, handles, host_args(config, own, engine_cls) if own else None)
