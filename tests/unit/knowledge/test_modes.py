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


def test_names_are_found_as_customers_write_them() -> None:
    from knowledge.entries import KnowledgeBase
    from knowledge.files import read_file
    from knowledge.lumen import SHIPPED
    from knowledge.mentions import MentionIndex

    index = MentionIndex(KnowledgeBase.of(1, read_file(SHIPPED)).entries)
    assert index.find("Halo落地灯有几个颜色？") == ["Halo 落地灯"]
    assert index.find("想买Halo，多少钱？") == ["Halo"]
    assert index.find("How much is the halo  floor lamp?") == ["Halo floor lamp"]
    assert index.find("Are halogen bulbs sold?") == []
    # A brand followed by a kind none of its products is: a product the shop does not sell.
    assert index.find("What's the price of the Halo desk lamp?") == []
    assert index.find("Halo 台灯多少钱？") == []
    assert index.find("the Halo  floor lamp and the Halo") == ["Halo floor lamp", "Halo"]
    assert index.find("Ember 台灯多少钱？") == ["Ember"]  # 台灯 and 桌灯 are one kind
    # Nor a brand followed by words of another kind: the Aurora is a desk lamp.
    for other in ("How much is the Aurora ceiling fan?", "Aurora 吊扇多少钱？",
                  "Is there an Aurora bulb?"):
        assert index.find(other) == [], other
    for own in ("How much is the Aurora lamp?", "Aurora 灯多少钱", "Is the Aurora dimmable?",
                "Aurora in white?"):
        assert index.find(own) == ["Aurora"], own
    assert index.of_kind("那个落地灯呢") == {"Halo 落地灯", "Iris 落地灯"}
    assert index.of_kind("and the floor  lamp?") == {"Halo floor lamp", "Iris floor lamp"}
    assert index.of_kind("你们的吊灯多少钱") == {"Echo 吊灯"}
    assert index.of_kind("pendant light price?") == {"Echo pendant light"}
    assert index.of_kind("Is your white LED strip dimmable?") == {"Ribbon LED strip"}
    # A kind after a name the knowledge base does not hold is another product's.
    for other in ("How much is the Zenith pendant light?", "星辰吊灯多少钱？", "Zenith吊灯呢",
                  "the astra night light"):
        assert index.of_kind(other) == set(), other


def test_proper_names_are_the_capitalised_words_one_answer_alone_states() -> None:
    from knowledge.entries import KnowledgeBase
    from knowledge.files import read_file
    from knowledge.lumen import SHIPPED
    from knowledge.mentions import proper_names

    kb = KnowledgeBase.of(1, read_file(SHIPPED))
    names = {word: kb.entries[i].id for word, i in proper_names(kb.entries).items()}
    # Not "pay" (questions write it), "lumen" (every answer's), "yes" or "email" (first in
    # a sentence), nor a product's name (a mention already).
    assert names == {"visa": "payment", "mastercard": "payment", "paypal": "payment",
                     "alipay": "payment", "wechat": "payment", "road": "store"}


def test_a_stated_name_decides_a_fact_question_not_an_order_status() -> None:
    from knowledge.entries import Entry
    from knowledge.modes import Thresholds, choose
    from knowledge.retrieval import Hit

    def hit(entry_id: str, dense: float, stated: bool = False) -> Hit:
        entry = Entry.model_validate({"id": entry_id, "questions": {"en": ["q?"]},
                                      "answers": {"en": "a."}})
        return Hit(entry, dense * 0.6, dense, 0.1, "q?", True, stated)

    hits = [hit("payment", 0.866, stated=True), hit("free-shipping", 0.88)]
    chosen = choose(hits, "shipping", Thresholds())
    assert (chosen.mode, chosen.entries[0].entry.id) == ("kb", "payment")
    assert "states a name" in chosen.reason
    assert choose(hits, "order_status", Thresholds()).mode == "open"
    closer = [hit("payment", 0.83, stated=True), hit("refund-time", 0.87)]
    assert choose(closer, None, Thresholds()).mode == "suggest"  # relevant, not the answer


def test_relevant_shop_wide_entries_without_a_decisive_one_are_offered_not_generated() -> None:
    from knowledge.entries import Entry
    from knowledge.modes import Thresholds, choose
    from knowledge.retrieval import Hit

    def hit(entry_id: str, score: float, dense: float) -> Hit:
        entry = Entry.model_validate({"id": entry_id, "questions": {"en": ["q?"]},
                                      "answers": {"en": "a."}})
        return Hit(entry, score, dense, 0.1, "q?")

    hits = [hit("refund-time", 0.60, 0.90), hit("return-window", 0.59, 0.89)]
    offered = choose(hits, None, Thresholds())
    assert offered.mode == "suggest"
    assert [h.entry.id for h in offered.entries] == ["refund-time", "return-window"]
    assert choose(hits, None, Thresholds(suggest=False)).mode == "grounded"
    assert choose(hits, "complaint", Thresholds()).mode == "grounded"  # the large tier's
    assert choose([hit("refund-time", 0.65, 0.95), *hits[1:]], None, Thresholds()).mode == "kb"


def test_an_entry_about_no_name_closer_in_meaning_wins_over_the_named_subjects() -> None:
    """"My Aurora flickers, how do I make a warranty claim?" is about the claim, not the
    Aurora's warranty years (the kb answer it got on 2026-12-04)."""
    from knowledge.entries import Entry
    from knowledge.modes import Thresholds, choose
    from knowledge.retrieval import Hit

    def hit(entry_id: str, score: float, dense: float, product: str | None = None) -> Hit:
        entry = Entry.model_validate({"id": entry_id, "questions": {"en": ["q?"]},
                                      "answers": {"en": "a."},
                                      "mentions": [product] if product else []})
        return Hit(entry, score, dense, 0.1, "q?")

    named = [hit("aurora-warranty", 0.55, 0.894, "Aurora"), hit("aurora-price", 0.51, 0.85,
                                                                "Aurora")]
    claim = hit("warranty-claim", 0.64, 0.936)
    chosen = choose([*named, claim], "account", Thresholds())
    assert (chosen.mode, [h.entry.id for h in chosen.entries]) == ("kb", ["warranty-claim"])
    assert "aurora-warranty" in chosen.reason
    near = hit("warranty-claim", 0.56, 0.90)  # closer, but not enough for a kb answer
    offered = choose([*named, near], None, Thresholds())
    assert [h.entry.id for h in offered.entries] == ["aurora-warranty", "warranty-claim"]
    assert offered.mode == "suggest"
    assert choose([*named, near], "complaint", Thresholds()).mode == "grounded"
    # Less close in meaning, even at a higher fused score: the named subject's entry.
    farther = hit("refund-time", 0.59, 0.856)
    assert choose([*named, farther], None, Thresholds()).entries[0].entry.id == \
        "aurora-warranty"


def test_the_retriever_says_which_questions_would_run_the_embedder() -> None:
    from knowledge.embedder import E5Small
    from knowledge.entries import Entry, KnowledgeBase
    from knowledge.retrieval import EmbeddingCache, Retriever

    kb = KnowledgeBase.of(1, [Entry.model_validate(
        {"id": f"{name.lower()}-price", "questions": {"en": [f"How much is the {name} lamp?"]},
         "answers": {"en": f"The {name} lamp costs 9 euros."}, "product": f"{name} lamp",
         "mentions": [f"{name} lamp"]}) for name in ("Halo", "Iris")])
    retriever = Retriever(kb, EmbeddingCache(E5Small()))
    question = "How bright is the Halo lamp at night?"
    assert retriever.embeds(question)
    retriever.search(question)
    assert not retriever.embeds(question)
    # The name is taken out before embedding: another product, same question, same row.
    assert not retriever.embeds(question.replace("Halo", "Iris"))
    assert not Retriever(kb, None).embeds(question)


def test_a_named_city_the_store_entry_states_asks_the_store_not_the_delivery_there() -> None:
    """"上海的门店在什么地方？" got the delivery time to Shanghai (2026-12-04, the later set):
    Shanghai named that entry as the subject, though the store entry's answer states it."""
    from knowledge.embedder import E5Small
    from knowledge.entries import Entry, KnowledgeBase
    from knowledge.modes import Thresholds, choose
    from knowledge.retrieval import EmbeddingCache, Retriever

    def entry(entry_id: str, en: tuple[str, str], zh: tuple[str, str],
              mentions: list[str] | None = None) -> Entry:
        return Entry.model_validate({"id": entry_id, "questions": {"en": [en[0]], "zh": [zh[0]]},
                                     "answers": {"en": en[1], "zh": zh[1]},
                                     "mentions": mentions or []})

    kb = KnowledgeBase.of(1, [
        entry("store", ("Where is your flagship store?",
                        "The Lumen Home flagship store is at 88 Lantern Road, Shanghai."),
              ("你们的旗舰店在哪里？", "Lumen Home 旗舰店位于上海灯笼路 88 号。")),
        *[entry(f"delivery-{city.lower()}", (f"How long does delivery to {city} take?",
                                               f"Delivery to {city} takes {days} days."),
                (f"寄到{zh}要多久？", f"寄到{zh}需要 {days} 天。"), [city, zh])
          for city, zh, days in (("Shanghai", "上海", 2), ("Berlin", "柏林", 5),
                                 ("Tokyo", "东京", 4))],
        *[entry(f"{name.lower()}-price", (f"How much does the {name} lamp cost?",
                                          f"The {name} lamp costs {price} euros."),
                (f"{name} 台灯多少钱？", f"{name} 台灯售价 {price} 欧元。"),
                [f"{name} lamp", f"{name} 台灯", name])
          for name, price in (("Aurora", 49), ("Jade", 54))],
    ])
    retriever = Retriever(kb, EmbeddingCache(E5Small()))

    def answer(question: str) -> tuple[str, str | None]:
        chosen = choose(retriever.search(question), None, Thresholds())
        return chosen.mode, chosen.best.entry.id if chosen.best else None

    assert answer("上海的门店在什么地方？") == ("kb", "store")
    assert answer("What's the address of your Shanghai shop?") == ("kb", "store")
    assert answer("寄到上海要几天？") == ("kb", "delivery-shanghai")
    assert answer("How many days does shipping to Shanghai take?") == ("kb", "delivery-shanghai")
    assert answer("寄到东京要几天？") == ("kb", "delivery-tokyo")


def test_a_question_asked_again_word_for_word_is_ranked_once_per_version() -> None:
    from knowledge.entries import Entry, KnowledgeBase
    from knowledge.retrieval import RANKED_CHARS, Retriever

    kb = KnowledgeBase.of(1, [Entry.model_validate(
        {"id": f"{name.lower()}-price", "questions": {"en": [f"How much is the {name} lamp?"]},
         "answers": {"en": f"The {name} lamp costs 9 euros."}, "product": f"{name} lamp",
         "mentions": [f"{name} lamp"]}) for name in ("Halo", "Iris")])
    retriever, scored = Retriever(kb, None), []
    get_scores = retriever.bm25.get_scores
    retriever.bm25.get_scores = lambda words: scored.append(words) or get_scores(words)
    first = retriever.search("How much is the Halo lamp?")
    assert retriever.search("How much is the Halo lamp?") == first
    assert first[0].entry.id == "halo-price" and len(scored) == 1
    # Another wording, other earlier turns, another top_k: ranked again.
    retriever.search("How much is it?", context="Tell me about the Iris lamp")
    retriever.search("How much is it?", context="Tell me about the Halo lamp")
    retriever.search("How much is the Halo lamp?", top_k=1)
    assert len(scored) == 4
    long = "How much is the Halo lamp? " + "x" * RANKED_CHARS  # not kept
    retriever.search(long)
    retriever.search(long)
    assert len(scored) == 6
    # The next version's retriever ranks afresh.
    fresh = Retriever(KnowledgeBase.of(2, list(kb.entries)), None)
    assert fresh.search("How much is the Halo lamp?") == first


def test_an_entry_near_in_meaning_leads_one_lifted_by_a_word_alone() -> None:
    """"Which ways of paying does your shop take?": the cancel entry ranked first on the word
    "way" (similarity 0.853), the payment entry under it (0.905); it was abstained."""
    from knowledge.entries import Entry
    from knowledge.modes import Thresholds, choose
    from knowledge.retrieval import Hit

    def hit(entry_id: str, score: float, dense: float) -> Hit:
        entry = Entry.model_validate({"id": entry_id, "questions": {"en": ["q?"]},
                                      "answers": {"en": "a."}})
        return Hit(entry, score, dense, 0.1, "q?")

    hits = [hit("cancel", 0.557, 0.853), hit("payment", 0.543, 0.905),
            hit("refund-time", 0.529, 0.843)]
    chosen = choose(hits, None, Thresholds())
    assert chosen.mode == "suggest"  # relevant, but the fused ranking is not decisive
    assert chosen.entries[0].entry.id == "payment"
    far = [hits[0], hit("payment", 0.543, 0.87), hits[2]]
    assert choose(far, None, Thresholds()).mode == "abstain"


def test_a_name_no_entry_writes_after_a_preposition_is_a_thing_the_shop_does_not_hold(
        ) -> None:
    from knowledge.entries import KnowledgeBase
    from knowledge.files import read_file
    from knowledge.lumen import SHIPPED
    from knowledge.mentions import StrangerNames, Strangers

    names = StrangerNames(KnowledgeBase.of(1, read_file(SHIPPED)).entries)
    assert names.find("Do you have a store in New York?") == Strangers(("New York",))
    assert names.find("Can I pay with Bitcoin or with PayPal?") == Strangers(("Bitcoin",))
    assert names.find("能用Bitcoin付款吗？ Or via Stripe") == Strangers(("Stripe", "Bitcoin"))
    assert names.find("Can you ship it to Lagos?") == Strangers(("Lagos",), ("Lagos",))
    assert names.find("Does your checkout accept Klarna?") == Strangers(("Klarna",))
    # Places in Chinese (jieba's dictionary), and where a parcel goes.
    assert names.find("你们在苏州有门店吗？") == Strangers(("苏州",))
    assert names.find("寄到哈尔滨要几天？") == Strangers(("哈尔滨",), ("哈尔滨",))
    # What a payment is made with, when no entry writes it.
    assert names.find("Can I pay using a bank transfer?") == Strangers(("bank transfer",))
    assert names.find("Can I pay for my lamp in three instalments?") == Strangers(
        ("instalments",))
    assert names.find("可以用花呗付款吗？") == Strangers(("花呗",))
    assert names.find("灯可以分期付款吗？") == Strangers(("分期",))
    assert names.find("可以用PayPal分两期付吗？") == Strangers(("PayPal分两期",))
    for plain in ("Where can I visit your shop in Shanghai?", "Can I pay with PayPal?",
                  "Is anyone there on Sunday or at Christmas?", "Hi, I'm Sarah. Hours?",
                  "Berlin delivery ETA?", "Paris?", "do you have a store in paris",
                  "上海市内配送要几天？", "寄到柏林要几天？", "Can I pay by credit card?",
                  "能用信用卡付款吗？", "可以用支付宝吗？", "用Visa卡付款可以吗？",
                  "结账能用哪些方式付钱？", "支持信用卡付款吗？", "能用万事达卡吗？",
                  "可以微信支付吗？"):
        assert names.find(plain) == Strangers(), plain


def test_a_question_naming_what_the_shop_does_not_hold_is_abstained() -> None:
    from knowledge.entries import Entry
    from knowledge.modes import Thresholds, choose
    from knowledge.retrieval import Hit

    store = Entry.model_validate({"id": "store", "questions": {"en": ["Where is your store?"]},
                                  "answers": {"en": "In Shanghai."}})
    hits = [Hit(store, 0.7, 0.95, 0.5, "Where is your store?", names=True)]
    assert choose(hits, None, Thresholds()).mode == "kb"
    chosen = choose(hits, None, Thresholds(), strangers=["Paris"])
    assert chosen.mode == "abstain" and "Paris" in chosen.reason
    # An entry that names nothing is as true in Leeds as anywhere.
    plain = [Hit(store, 0.7, 0.95, 0.5, "Where is your store?")]
    assert choose(plain, None, Thresholds(), strangers=["Leeds"]).mode == "kb"
    # A complaint still reaches the large tier; small talk stays small talk.
    assert choose(hits, "complaint", Thresholds(), strangers=["Paris"]).mode == "grounded"
    assert choose(hits, "chitchat", Thresholds(), strangers=["Paris"]).mode == "kb"
