from __future__ import annotations

import pytest

from knowledge.modes import asks


@pytest.mark.parametrize("text", [
    "Are your lamps certified for use in bathrooms?", "how long is the warranty",
    "Can I pay by card", "Shipping time to Oslo?", "可以分期付款吗", "发货到开罗大概几天",
    "你们客服几点下班", "退款多少天到账", "有没有学生优惠",
])
def test_questions_are_recognised_with_or_without_a_mark(text: str) -> None:
    assert asks(text)


@pytest.mark.parametrize("text", [
    "I saw your shop on TV last week", "thanks, that helped", "Showcase of the new range",
    "好的，谢谢", "我昨天收到货了", "Have a nice day", "May the lamp shine bright", "这么贵",
])
def test_remarks_are_no_questions(text: str) -> None:
    assert not asks(text)
