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
from vllm.exceptions import VLLMClientError
from vllm.usage.usage_lib import UsageContext
from vllm.utils.argparse_utils import FlexibleArgumentParser
from vllm.v1.engine.async_llm import AsyncLLM

from appliance.errors import error_body
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


class VLLMChatEngine(ChatEngine):
    def __init__(self, options: dict[str, Any]):
        self._options = options
        self._engine: AsyncLLM | None = None
        self._state = State()
        self._aborted = 0

    async def start(self) -> None:
        parser = make_arg_parser(FlexibleArgumentParser())
        args = parser.parse_args(engine_cli_args(self._options))
        engine_args = AsyncEngineArgs.from_cli_args(args)
        vllm_config = engine_args.create_engine_config(
            usage_context=UsageContext.OPENAI_API_SERVER
        )
        self._engine = AsyncLLM.from_vllm_config(
            vllm_config=vllm_config,
            usage_context=UsageContext.OPENAI_API_SERVER,
            disable_log_stats=engine_args.disable_log_stats,
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
        async for out in self._run(self._state.openai_serving_chat,
                                   "create_chat_completion", request):
            yield out

    async def completions(self, body: dict[str, Any]) -> AsyncIterator[EngineOutput]:
        try:
            request = CompletionRequest.model_validate(body)
        except ValidationError as exc:
            yield _pydantic_error(exc)
            return
        async for out in self._run(self._state.openai_serving_completion,
                                   "create_completion", request):
            yield out

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
            self._engine.shutdown()
            self._engine = None
