"""The enabled channels, mounted under /channels/<name>/ of a FastAPI app."""

from __future__ import annotations

from fastapi import FastAPI

from kernel.channel_config import ChannelsConfig
from serving.channels.base import ChannelAdapter
from serving.channels.common import Responder
from serving.channels.dingtalk import DingTalkAdapter
from serving.channels.feishu import FeishuAdapter
from serving.channels.outbox import NoOutbox, Outbox
from serving.channels.wecom import WeComAdapter

ADAPTERS = {"wecom": WeComAdapter, "feishu": FeishuAdapter, "dingtalk": DingTalkAdapter}


def mount_channels(app: FastAPI, config: ChannelsConfig, responder: Responder,
                   outbox: Outbox | None = None) -> list[str]:
    """Add each enabled channel's routes; returns their names. The adapters stay in
    `app.state.channel_adapters` (the copy of the app a Ray Serve replica runs has its own,
    the ones its routes call)."""
    adapters: dict[str, ChannelAdapter] = {}
    for name in config.enabled():
        adapter = adapters[name] = ADAPTERS[name](config, responder)
        adapter.outbox = outbox or NoOutbox()
        app.include_router(adapter.router, prefix=f"/channels/{name}")
    app.state.channel_adapters = adapters
    return list(adapters)


def channel_adapters(app: FastAPI) -> dict[str, ChannelAdapter]:
    return getattr(app.state, "channel_adapters", {})
