"""Builds the Ray Serve application from the config: the ingress and one deployment per
configured tier."""

from __future__ import annotations

import os
from typing import Any

from ray import serve
from ray.serve import Application
from ray.serve.config import RequestRouterConfig

from kernel.config import AppConfig, TierConfig
from models.registry import model_dir
from serving.cpu_dtype import cpu_auto_dtype
from serving.ingress.deployment import make_ingress_deployment
from serving.model_deployment import DEFAULT_ENGINE, ModelServer
from serving.vllm_plugin import ENV as ENGINE_WAIT_ENV
from serving.vllm_plugin import GROUPED_LORA_ENV

INGRESS_MAX_ONGOING = 4096


def engine_options(config: AppConfig, name: str, tier: TierConfig) -> dict[str, Any]:
    """vLLM engine arguments for one tier; `engine_args` in the config wins."""
    options: dict[str, Any] = {
        "model": str(model_dir(config, tier)),
        "served_model_name": name,
        "max_model_len": tier.max_model_len,
        "max_num_seqs": tier.max_num_seqs,
        "enable_prefix_caching": tier.enable_prefix_caching,
        "dtype": cpu_auto_dtype() if config.profile == "cpu" and tier.dtype == "auto"
        else tier.dtype,
        # vLLM's request log holds prompt text: customer data, off unless asked for.
        "enable_log_requests": config.logging.log_prompts,
    }
    if tier.enable_lora:
        options |= {"enable_lora": True, "max_lora_rank": tier.max_lora_rank,
                    "max_loras": tier.max_loras}
    return options | tier.engine_args


def omp_threads_bind(setting: str) -> str:
    """`all`: every core this process may run on. vLLM's own `auto` keeps one core back
    for its spinning scheduler, which `cpu_engine_wait_s` puts to sleep instead."""
    if setting != "all":
        return setting
    return ",".join(str(cpu) for cpu in sorted(os.sched_getaffinity(0)))


def tier_env(config: AppConfig, tier: TierConfig) -> dict[str, str]:
    env = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    if config.profile == "cpu":
        env |= {"VLLM_CPU_KVCACHE_SPACE": str(tier.cpu_kvcache_space_gib),
                "VLLM_CPU_OMP_THREADS_BIND": omp_threads_bind(tier.cpu_omp_threads_bind)}
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
    return deployment.bind(name, engine_options(config, name, tier), engine_cls)


def build_app(config: AppConfig, engine_cls: str = DEFAULT_ENGINE) -> Application:
    ingress = make_ingress_deployment(config).options(
        max_ongoing_requests=INGRESS_MAX_ONGOING,
        graceful_shutdown_timeout_s=config.server.drain_timeout_s,
        ray_actor_options={"num_cpus": 0, "resources": config.ray.router_resources},
    )
    return ingress.bind(config, {name: tier_deployment(config, name, engine_cls)
                                 for name in config.tier_names})
