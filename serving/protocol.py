"""Request models checked at the router, before anything reaches an engine.

A request may carry only the fields named here (`PASSED_TO_ENGINE`: what vLLM checks
itself); anything else is a 400 naming the field. Fields whose text would leave without
the output filter (log-probabilities' tokens, tool-call arguments, an echoed prompt) are
refused while set, never passed on.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

NonEmptyStr = Annotated[str, StringConstraints(min_length=1)]
Role = Literal["system", "developer", "user", "assistant", "tool", "function"]


def _encodable(text: str) -> str:
    # JSON allows lone surrogates ("\ud800"); UTF-8 does not, and nothing downstream should
    # have to cope with them.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("text is not valid Unicode (lone surrogate)") from None
    return text


def content_text(content: str | list[dict[str, Any]] | None) -> str:
    """A message's text: the string itself, or its text parts joined (the one reading of
    content parts that the router, the store and the filters all use)."""
    if isinstance(content, str):
        return content
    return " ".join(str(p.get("text", "")) for p in content or [] if isinstance(p, dict))


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Role
    content: str | list[dict[str, Any]] | None = None

    @field_validator("content")
    @classmethod
    def _valid_text(cls, content: Any) -> Any:
        if isinstance(content, str):
            return _encodable(content)
        for part in content or []:
            if isinstance(part.get("text"), str):
                _encodable(part["text"])
        return content


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: StrictBool | None = None


# vLLM reads and checks these; the router only bounds their size (serving/pipeline/caps.py).
PASSED_TO_ENGINE = (
    "top_k", "min_p", "repetition_penalty", "ignore_eos", "min_tokens", "logit_bias",
    "response_format", "structured_outputs", "skip_special_tokens",
    "include_stop_str_in_output")
# Their output carries model or prompt text the filters do not read: refused unless unset.
REFUSED_WHEN_SET = ("logprobs", "top_logprobs", "prompt_logprobs", "echo", "tools",
                    "tool_choice", "functions", "function_call", "best_of", "suffix")


class _Sampling(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str = "auto"
    stream: StrictBool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(None, ge=1)
    n: int = Field(1, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    seed: int | None = None
    stop: str | list[Annotated[str, StringConstraints(max_length=256)]] | None = None
    user: str | None = None
    top_k: int | None = None
    min_p: float | None = None
    repetition_penalty: float | None = None
    ignore_eos: StrictBool | None = None
    min_tokens: int | None = Field(None, ge=0)
    logit_bias: dict[str, float] | None = None
    response_format: dict[str, Any] | None = None
    structured_outputs: dict[str, Any] | None = None
    skip_special_tokens: StrictBool | None = None
    include_stop_str_in_output: StrictBool | None = None
    logprobs: Any = None
    top_logprobs: Any = None
    prompt_logprobs: Any = None
    echo: Any = None
    tools: Any = None
    tool_choice: Any = None
    functions: Any = None
    function_call: Any = None
    best_of: Any = None
    suffix: Any = None

    @field_validator(*REFUSED_WHEN_SET)
    @classmethod
    def _no_unfiltered_text(cls, value: Any, info: ValidationInfo) -> Any:
        if value in (None, False, 0, "none", []) or (info.field_name == "best_of"
                                                     and value == 1):
            return value
        raise ValueError("not served: its text would leave without the output filter")

    @property
    def sequences(self) -> int:
        """Sequences the engine generates for this request: prompts x n."""
        return self.n


class ChatRequest(_Sampling):
    messages: list[Message] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    persona: str | None = Field(None, description="The appliance's persona for this "
                                "chat (also the x-onlycs-persona header); not sent on.")

    @model_validator(mode="after")
    def _has_a_question(self) -> ChatRequest:
        users = [m for m in self.messages if m.role == "user"]
        if users and not self.last_user_text().strip():
            raise ValueError("the last user message is empty or only whitespace")
        return self

    def user_texts(self) -> list[str]:
        return [content_text(m.content) for m in self.messages if m.role == "user"]

    def last_user_text(self) -> str:
        texts = self.user_texts()
        return texts[-1] if texts else ""


class CompletionRequest(_Sampling):
    prompt: NonEmptyStr | list[NonEmptyStr] | list[int] | list[list[int]] = Field(
        description="Text (or token ids) to continue; must not be empty.")

    @field_validator("prompt")
    @classmethod
    def _valid_prompt(cls, prompt: Any) -> Any:
        for text in [prompt] if isinstance(prompt, str) else prompt:
            if isinstance(text, str):
                _encodable(text)
        return prompt

    def last_user_text(self) -> str:
        return self.prompt if isinstance(self.prompt, str) else ""

    @property
    def prompt_count(self) -> int:
        prompt = self.prompt
        if isinstance(prompt, str) or (prompt and isinstance(prompt[0], int)):
            return 1
        return len(prompt)

    @property
    def sequences(self) -> int:
        return self.n * self.prompt_count
