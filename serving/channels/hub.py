"""The enabled channels, mounted under /channels/<name>/ of a FastAPI app."""

from __future__ import annotations

from fastapi import FastAPI

from kernel.channel_config import ChannelsConfig
from serving.channels.common import Responder
from serving.channels.dingtalk import DingTalkAdapter
from serving.channels.feishu import FeishuAdapter
from serving.channels.wecom import WeComAdapter

ADAPTERS = {"wecom": WeComAdapter, "feishu": FeishuAdapter, "dingtalk": DingTalkAdapter}


def mount_channels(app: FastAPI, config: ChannelsConfig, responder: Responder) -> list[str]:
    """Add each enabled channel's routes; returns their names."""
    names = config.enabled()
    for name in names:
        adapter = ADAPTERS[name](config, responder)
        app.include_router(adapter.router, prefix=f"/channels/{name}")
    return names
