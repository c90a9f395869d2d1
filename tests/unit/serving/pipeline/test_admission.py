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


def test_a_tier_admits_sequences_so_one_wide_request_cannot_fill_it_unseen() -> None:
    admission = Admission(("small",), max_pending_per_tier=16)
    admission.admit("small", 12)
    admission.begin("small", 12)
    with pytest.raises(APIError) as full:
        admission.admit("small", 8)  # 12 + 8 sequences: over, though only one request
    assert full.value.status == 503
    with pytest.raises(APIError) as never:
        admission.admit("small", 17)  # more than the tier ever takes: a 400, not a retry
    assert never.value.status == 400
    admission.end("small", 12)
    admission.admit("small", 16)
    assert admission.in_flight == 0 and admission.pending["small"] == 0
