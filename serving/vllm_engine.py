"""The one module that imports vllm: vLLM's AsyncLLM plus its OpenAI serving layer.

vLLM's own chat/completion serving classes do the chat templating, sampling
parameter mapping, SSE framing and usage accounting; reusing them keeps the
appliance's OpenAI surface identical to bare vLLM's.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from pydantic import ValidationError
from starlette.datastructures import State
from vllm.engine.arg_utils import AsyncEngineArgs
from vllm.entrypoints.launchers.api_server.app_state import init_app_state
from vllm.entrypoints.launchers.cli_args import make_arg_parser
from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest
from vllm.entrypoints.openai.completion.protocol import CompletionRequest
from vllm.entrypoints.serve.lora.protocol import LoadLoRAAdapterRequest, UnloadLoRAAdapterRequest
from vllm.exceptions import VLLMClientError
from vllm.usage.usage_lib import UsageContext
from vllm.utils.argparse_utils import FlexibleArgumentParser
from vllm.v1.engine.async_llm import AsyncLLM
from vllm.v1.metrics.loggers import PrometheusStatLogger, StatLoggerBase

from kernel.errors import error_body
from serving import metrics
from serving.cpu_threads import engine_threads
from serving.engine_protocol import ChatEngine, EngineOutput, JSONResult

logger = logging.getLogger(__name__)


def engine_cli_args(options: dict[str, Any]) -> list[str]:
    """Engine options as vLLM CLI flags, so vLLM's own parser fills every default."""
    argv: list[str] = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            argv.append(flag)
        elif value is False:
            argv.append("--no-" + key.replace("_", "-"))
        elif value is not None:
            argv += [flag, str(value)]
    return argv


def _pydantic_error(exc: ValidationError) -> JSONResult:
    first = exc.errors()[0]
    param = ".".join(str(p) for p in first["loc"]) or None
    return JSONResult(status=400, body=error_body(400, first["msg"], param=param))


def _vllm_error(err: Any) -> JSONResult:
    status = int(err.error.code)
    message = err.error.message
    if status >= 500:
        # Internal detail goes to the log, never to the client.
        logger.error("engine error %s: %s", status, message)
        message = "the model engine failed to process this request"
    return JSONResult(status=status, body=error_body(status, message, param=err.error.param))


class EngineMetricsLogger(StatLoggerBase):
    """Feeds vLLM's per-step scheduler and iteration stats into onlycs_ metrics."""

    def __init__(self, vllm_config: Any, engine_index: int = 0):
        self.tier = str(vllm_config.model_config.served_model_name)
        # Create every tier series at 0 now, so dashboards show 0 rather than no data.
        for family in metrics.TIER_FAMILIES:
            family.labels(self.tier)

    def record(self, scheduler_stats: Any, iteration_stats: Any,
               mm_cache_stats: Any = None, engine_idx: int = 0) -> None:
        tier = self.tier
        if scheduler_stats is not None:
            metrics.ENGINE_RUNNING.labels(tier).set(scheduler_stats.num_running_reqs)
            metrics.ENGINE_WAITING.labels(tier).set(scheduler_stats.num_waiting_reqs)
            metrics.KV_CACHE_USAGE.labels(tier).set(scheduler_stats.kv_cache_usage)
        if iteration_stats is None:
            return
        metrics.GENERATION_TOKENS.labels(tier).inc(iteration_stats.num_generation_tokens)
        prompt = iteration_stats.prompt_token_stats
        metrics.PROMPT_TOKENS.labels(tier).inc(prompt.total)
        metrics.PROMPT_CACHED_TOKENS.labels(tier).inc(prompt.cached_tokens)
        for ttft in iteration_stats.time_to_first_tokens_iter:
            metrics.TTFT.labels(tier).observe(ttft)
        for itl in iteration_stats.inter_token_latencies_iter:
            metrics.INTER_TOKEN.labels(tier).observe(itl)

    def log_engine_initialized(self) -> None:
        metrics.ENGINE_UP.labels(self.tier).set(1)


class NoVLLMSeries(PrometheusStatLogger):
    """vLLM records its own `vllm:` series on every engine step unless a Prometheus logger
    is among the custom ones; the appliance exports only `onlycs_` series (the rest are
    filtered out of /metrics), so that work was thrown away: this one records nothing."""

    def __init__(self, vllm_config: Any, engine_indexes: list[int] | None = None):
        pass  # registers no series

    def record(self, *args: Any, **kwargs: Any) -> None:
        pass

    def record_sleep_state(self, *args: Any, **kwargs: Any) -> None:
        pass

    def record_admission_rejection(self, *args: Any, **kwargs: Any) -> None:
        pass

    def log_engine_initialized(self) -> None:
        pass


class VLLMChatEngine(ChatEngine):
    def __init__(self, options: dict[str, Any]):
        self._options = options
        self._engine: AsyncLLM | None = None
        self._state = State()
        self._aborted = 0
        self._tier = str(options.get("served_model_name", "unknown"))

    async def start(self) -> None:
        parser = make_arg_parser(FlexibleArgumentParser())
        args = parser.parse_args(engine_cli_args(self._options))
        engine_args = AsyncEngineArgs.from_cli_args(args)
        vllm_config = engine_args.create_engine_config(
            usage_context=UsageContext.OPENAI_API_SERVER
        )
        with engine_threads():
            self._engine = AsyncLLM.from_vllm_config(
                vllm_config=vllm_config,
                usage_context=UsageContext.OPENAI_API_SERVER,
                disable_log_stats=False,
                stat_loggers=[EngineMetricsLogger, NoVLLMSeries],
            )
        tasks = await self._engine.get_supported_tasks()
        await init_app_state(self._engine, self._state, args, supported_tasks=tasks)

    async def _run(self, serving: Any, method: str, request: Any) -> AsyncIterator[EngineOutput]:
        try:
            result = await getattr(serving, method)(request, None)
        except (ValueError, VLLMClientError) as exc:
            yield _vllm_error(serving.create_error_response(exc))
            return
        if isinstance(result, AsyncGenerator):
            try:
                async for chunk in result:
                    yield chunk
            except (asyncio.CancelledError, GeneratorExit):
                # The client went away: closing vLLM's generator aborts the request.
                self._aborted += 1
                metrics.ENGINE_ABORTS.labels(self._tier).inc()
                await result.aclose()
                raise
            return
        if hasattr(result, "error"):
            yield _vllm_error(result)
            return
        yield JSONResult(status=200, body=result.model_dump(exclude_none=True))

    async def chat(self, body: dict[str, Any]) -> AsyncIterator[EngineOutput]:
        try:
            request = ChatCompletionRequest.model_validate(body)
        except ValidationError as exc:
            yield _pydantic_error(exc)
            return
        except VLLMClientError as exc:  # vLLM's own validators raise these unwrapped
            yield _vllm_error(self._state.openai_serving_chat.create_error_response(exc))
            return
        async for out in self._run(self._state.openai_serving_chat,
                                   "create_chat_completion", request):
            yield out

    async def completions(self, body: dict[str, Any]) -> AsyncIterator[EngineOutput]:
        try:
            request = CompletionRequest.model_validate(body)
        except ValidationError as exc:
            yield _pydantic_error(exc)
            return
        except VLLMClientError as exc:  # vLLM's own validators raise these unwrapped
            yield _vllm_error(self._state.openai_serving_completion.create_error_response(exc))
            return
        async for out in self._run(self._state.openai_serving_completion,
                                   "create_completion", request):
            yield out

    async def load_adapter(self, name: str, path: str) -> JSONResult:
        # vLLM serialises loads of one name and lets requests already running finish on
        # the adapter they started with.
        result = await self._state.openai_serving_models.load_lora_adapter(
            LoadLoRAAdapterRequest(lora_name=name, lora_path=path))
        if isinstance(result, str):
            return JSONResult(status=200, body={"status": "loaded", "name": name})
        return _vllm_error(result)

    async def unload_adapter(self, name: str) -> JSONResult:
        result = await self._state.openai_serving_models.unload_lora_adapter(
            UnloadLoRAAdapterRequest(lora_name=name))
        if isinstance(result, str):
            return JSONResult(status=200, body={"status": "unloaded", "name": name})
        return _vllm_error(result)

    def adapters(self) -> list[str]:
        return sorted(self._state.openai_serving_models.lora_requests)

    async def check_health(self) -> None:
        if self._engine is None:
            raise RuntimeError("engine not started")
        await self._engine.check_health()

    async def stats(self) -> dict[str, Any]:
        assert self._engine is not None
        processor = self._engine.output_processor
        return {"unfinished_requests": processor.get_num_unfinished_requests(),
                "aborted_requests": self._aborted}

    def shutdown(self) -> None:
        if self._engine is not None:
            metrics.ENGINE_UP.labels(self._tier).set(0)
            self._engine.shutdown()
            self._engine = None
