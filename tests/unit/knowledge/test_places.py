"""Places in Chinese questions, from jieba's dictionary (the real one, shipped in its wheel)."""

from knowledge.places import gazetteer, places


def test_the_gazetteer_is_jiebas_place_words() -> None:
    known = gazetteer()
    assert {"苏州", "哈尔滨", "上海", "布宜诺斯艾利斯"} <= known
    assert "门店" not in known and "付款" not in known


def test_places_are_matched_longest_first_where_they_stand() -> None:
    assert places("你们在苏州有门店吗？") == [("苏州", 3)]
    assert places("寄到布宜诺斯艾利斯要几天？") == [("布宜诺斯艾利斯", 2)]
    assert places("上海市内配送要几天？") == [("上海市", 0)]
    assert places("Halo 落地灯多少钱？") == []
    assert places("Do you have a store in Paris?") == []
