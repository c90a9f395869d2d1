from __future__ import annotations

import pytest

from kernel.errors import APIError
from serving.pipeline.admission import Admission


def test_a_full_tier_is_refused_with_retry_after_others_are_not() -> None:
    admission = Admission(("small", "kb"), max_pending_per_tier=2)
    for _ in range(2):
        admission.admit("kb")
        admission.begin("kb")
    with pytest.raises(APIError) as err:
        admission.admit("kb")
    assert err.value.status == 503 and err.value.headers["Retry-After"]
    admission.admit("small")
    admission.end("kb")
    admission.admit("kb")
    assert admission.in_flight == 1


def test_draining_refuses_new_work() -> None:
    admission = Admission(("small",), max_pending_per_tier=2)
    admission.check_open()
    admission.draining = True
    with pytest.raises(APIError) as err:
        admission.check_open()
    assert err.value.code == "draining" and err.value.status == 503
