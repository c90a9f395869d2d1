"""Adapter loads through the chain's AdapterControl, over fake tiers."""

from __future__ import annotations

import threading

import pytest

import serving.adapters
from kernel.errors import APIError
from lora.registry import AdapterError


async def test_an_adapters_files_are_checksummed_off_the_event_loop(pipeline,
                                                                     monkeypatch) -> None:
    loop_thread = threading.current_thread()
    checked_in: list[threading.Thread] = []

    def validate(*_: object, **__: object) -> None:
        checked_in.append(threading.current_thread())
        raise AdapterError("adapter files incomplete or changed: weights")

    monkeypatch.setattr(serving.adapters, "validate", validate)
    with pytest.raises(APIError) as err:
        await pipeline.adapters.load("kb-v2", "kb-v2", False)
    assert err.value.status == 400 and "changed" in err.value.message
    assert checked_in and checked_in[0] is not loop_thread
