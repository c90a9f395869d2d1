"""Request models checked at the router, before anything reaches an engine.

They hold only what the router must decide on (model, stream, output caps,
sampling ranges); every other OpenAI field passes through to vLLM unchanged.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
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


class _Sampling(BaseModel):
    model_config = ConfigDict(extra="allow")
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
    stop: str | list[str] | None = None
    user: str | None = None


class ChatRequest(_Sampling):
    messages: list[Message] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)

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
