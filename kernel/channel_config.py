"""Configuration of the chat-platform channels (WeCom, Feishu/Lark, DingTalk).

Secrets are `SecretStr`, so they never appear in logs, reprs or `/admin/config`.
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _ChannelBase(_Section):
    enabled: bool = Field(False, description="Mount this channel under /channels/<name>/.")
    api_base_url: str = Field(description="The platform's API; replies are sent through it.")
    timestamp_window_s: int = Field(
        300, ge=10, description="Requests signed further from now than this are refused.")
    persona: str | None = Field(None, description="Persona for this channel's sessions.")

    @field_validator("api_base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL")
        return value.rstrip("/")


class WeComConfig(_ChannelBase):
    api_base_url: str = Field("https://qyapi.weixin.qq.com",
                              description="WeCom server API (gettoken, message/send).")
    corp_id: str = Field("", description="CorpID: the receive id every message must carry.")
    agent_id: int = Field(0, ge=0, description="AgentId of the self-built application.")
    secret: SecretStr = Field(SecretStr(""), description="The application's Secret.")
    token: SecretStr = Field(SecretStr(""), description="Callback Token (signatures).")
    encoding_aes_key: SecretStr = Field(
        SecretStr(""), description="Callback EncodingAESKey: 43 characters of base64.")
    passive_reply_s: float = Field(
        4.0, ge=0, le=4.5, description="Answer in the callback's own response when the "
        "reply is ready this soon (WeCom waits 5 s); later replies go through message/send.")

    @model_validator(mode="after")
    def _complete_when_enabled(self) -> WeComConfig:
        if not self.enabled:
            return self
        missing = [name for name in ("corp_id", "secret", "token", "encoding_aes_key")
                   if not _value(getattr(self, name))]
        if missing:
            raise ValueError(f"WeCom channel is enabled but {', '.join(missing)} "
                             "is not set")
        key = self.encoding_aes_key.get_secret_value()
        try:
            valid = len(key) == 43 and len(base64.b64decode(key + "=", validate=True)) == 32
        except binascii.Error:
            valid = False
        if not valid:
            raise ValueError("encoding_aes_key must be the 43-character EncodingAESKey")
        return self


class FeishuConfig(_ChannelBase):
    api_base_url: str = Field("https://open.feishu.cn",
                              description="Feishu/Lark open API (use Lark's for Lark).")
    app_id: str = Field("", description="App ID.")
    app_secret: SecretStr = Field(SecretStr(""), description="App Secret.")
    verification_token: SecretStr = Field(SecretStr(""), description="Verification Token.")
    encrypt_key: SecretStr = Field(
        SecretStr(""), description="Encrypt Key; when set, events must be encrypted and "
        "signed.")

    @model_validator(mode="after")
    def _complete_when_enabled(self) -> FeishuConfig:
        if self.enabled:
            missing = [name for name in ("app_id", "app_secret", "verification_token")
                       if not _value(getattr(self, name))]
            if missing:
                raise ValueError(f"Feishu channel is enabled but {', '.join(missing)} "
                                 "is not set")
        return self


class DingTalkConfig(_ChannelBase):
    api_base_url: str = Field(
        "https://oapi.dingtalk.com",
        description="Replies are only posted to session webhooks under this URL.")
    app_secret: SecretStr = Field(SecretStr(""), description="The robot's AppSecret.")
    timestamp_window_s: int = Field(
        300, ge=10, le=3600, description="Requests signed further from now are refused "
        "(DingTalk allows at most an hour; a short window narrows a replay).")
    sync_reply_s: float = Field(
        3.0, ge=0, description="Answer in the callback's own response when the reply is "
        "ready this soon; later replies go to the message's session webhook.")

    @model_validator(mode="after")
    def _complete_when_enabled(self) -> DingTalkConfig:
        if self.enabled and not self.app_secret.get_secret_value():
            raise ValueError("DingTalk channel is enabled but app_secret is not set")
        return self


class ChannelsConfig(_Section):
    model: str = Field("auto", description="Model (tier) channel messages are sent to.")
    max_tokens: int = Field(256, ge=1, description="Output cap of one chat reply.")
    busy_reply: str = Field(
        "Sorry, we are very busy right now. Please try again in a minute.",
        description="Sent to the user when the appliance is over its limits.")
    outbound_timeout_s: float = Field(10.0, gt=0, description="Per call to a platform API.")
    outbound_retries: int = Field(2, ge=0, le=5,
                                  description="Retries of a failed platform API call.")
    dedup_entries: int = Field(100_000, ge=100,
                               description="Message ids remembered for de-duplication.")
    owed_reply_max_age_s: float = Field(
        86_400, gt=0, description="A reply still owed to a platform when the appliance "
        "stopped is sent on the next start if it is younger than this; older is dropped.")
    session_secret_file: Path = Field(
        Path("var/channel-sessions.key"),
        description="Per-install secret (0600, created on first use) that keys a platform "
        "user's session id: nobody who knows a user id can compute the session.")
    wecom: WeComConfig = Field(default_factory=WeComConfig)
    feishu: FeishuConfig = Field(default_factory=FeishuConfig)
    dingtalk: DingTalkConfig = Field(default_factory=DingTalkConfig)

    def enabled(self) -> list[str]:
        return [name for name in ("wecom", "feishu", "dingtalk")
                if getattr(self, name).enabled]


def _value(value: object) -> str:
    return value.get_secret_value() if isinstance(value, SecretStr) else str(value or "")
