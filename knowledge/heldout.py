"""The held-out evaluation questions for `onlycs kb eval`: paraphrases in wording the
knowledge base (and the adapter's training data) never uses, half in Chinese, plus
questions the knowledge base cannot answer (other products, other cities, unstated policies).

Written from templates with a fixed seed (`python -m knowledge.heldout`); each line is
{"question", "lang", "entry"} with `entry` null for an unanswerable question.

The answer modes' thresholds were set by looking at this set's results, so its scores are
optimistic. `data/fresh.jsonl` (same format, written by hand on 2026-12-04 in wording
neither this set nor the knowledge base uses: lower case, no question mark, brand names
alone, other cities and products) was the check nothing was tuned on until that day's
change to the knowledge base (more ways of asking each shop-wide question) was written after
seeing its misses; `data/unseen.jsonl`, written after that change, was the check until the
next day's retrieval change was written after seeing its misses; `data/later.jsonl`, written
by hand before that change, was the check until that day's answer-mode changes were written
after seeing its misses; `data/evening.jsonl`, written by hand at 14:13 on 2026-12-04 before
the evening's changes, was the check until the night's retrieval change; `data/night.jsonl`,
written by hand at 20:13 on 2026-12-04 before it, was the check until 2026-12-05;
`data/dawn.jsonl`, written by hand at 02:45 on 2026-12-05 before that day's changes, was
the check until the fact words of `knowledge/aspects.py` were written after seeing its
misses; `data/morning.jsonl`, written by hand at 02:55 after that change and before it was
run on, was the check until the day's second round of changes. From then on each set was
written by hand before the change it checks was run, and was the check until the next change
was written after seeing its misses (2026-12-05): `data/sunrise.jsonl` (05:56, before the
unknown-brand kind fix and entries' keywords), `data/forenoon.jsonl` (06:17, after the
keywords), `data/midday.jsonl` (06:22, after more keywords), `data/afternoon.jsonl` (06:32,
after the names no entry writes), `data/teatime.jsonl` (06:39, after that rule was
narrowed), `data/dusk.jsonl` (06:47, after small talk asking a keyword's question was
offered the entry), `data/nightfall.jsonl` (06:56, after dusk's keyword additions) and
`data/moonrise.jsonl` (09:25, before places in Chinese questions and what a payment question
pays with), `data/moonset.jsonl` (09:35, after them and before they were run on) and
`data/starlight.jsonl` (09:47, after the grounded answers' check of names no entry writes),
the check now.
Keep each set out of the knowledge base's questions.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from knowledge.lumen import CITIES, PRODUCTS, _zh_name

HELDOUT = Path(__file__).parent / "data" / "heldout.jsonl"
FRESH = Path(__file__).parent / "data" / "fresh.jsonl"
UNSEEN = Path(__file__).parent / "data" / "unseen.jsonl"
LATER = Path(__file__).parent / "data" / "later.jsonl"
EVENING = Path(__file__).parent / "data" / "evening.jsonl"
NIGHT = Path(__file__).parent / "data" / "night.jsonl"
DAWN = Path(__file__).parent / "data" / "dawn.jsonl"
MORNING = Path(__file__).parent / "data" / "morning.jsonl"
SUNRISE = Path(__file__).parent / "data" / "sunrise.jsonl"
FORENOON = Path(__file__).parent / "data" / "forenoon.jsonl"
MIDDAY = Path(__file__).parent / "data" / "midday.jsonl"
AFTERNOON = Path(__file__).parent / "data" / "afternoon.jsonl"
TEATIME = Path(__file__).parent / "data" / "teatime.jsonl"
DUSK = Path(__file__).parent / "data" / "dusk.jsonl"
NIGHTFALL = Path(__file__).parent / "data" / "nightfall.jsonl"
MOONRISE = Path(__file__).parent / "data" / "moonrise.jsonl"
MOONSET = Path(__file__).parent / "data" / "moonset.jsonl"
STARLIGHT = Path(__file__).parent / "data" / "starlight.jsonl"
# The checks written after the held-out set, oldest first (what `perf` scores beside it).
CHECKS = {"fresh": FRESH, "unseen": UNSEEN, "later": LATER, "evening": EVENING,
          "night": NIGHT, "dawn": DAWN, "morning": MORNING,
          "sunrise": SUNRISE, "forenoon": FORENOON,
          "midday": MIDDAY, "afternoon": AFTERNOON,
          "teatime": TEATIME, "dusk": DUSK,
          "nightfall": NIGHTFALL, "moonrise": MOONRISE,
          "moonset": MOONSET, "starlight": STARLIGHT}
SEED = 20261202

EN = {
    "price": ["What would the {name} set me back?", "{name}: what's the price tag?",
              "How many euros for a {name}?", "What does a {name} go for these days?"],
    "colors": ["Which finishes can I get the {name} in?",
               "What colour options are there for the {name}?",
               "Is the {name} sold in more than one colour?"],
    "power": ["How many watts does the {name} pull?",
              "What's the power consumption of the {name}?",
              "Is the {name} energy hungry? How many watts?"],
    "warranty": ["For how many years is the {name} covered?",
                 "If my {name} breaks, how long am I covered?",
                 "What guarantee period comes with the {name}?"],
    "delivery": ["I live in {city}, how many days until my package shows up?",
                 "Shipping time to {city}?", "How quickly can you get an order to {city}?"],
}
ZH = {
    "price": ["{zh}卖多少？", "{zh}的价格是多少？", "买一个{zh}要花多少欧元？", "{name} 什么价？"],
    "colors": ["{zh}有几种颜色可以选？", "{zh}有什么配色？"],
    "power": ["{zh}是多少瓦的？", "{zh}耗电多少瓦？"],
    "warranty": ["{zh}的质保期是几年？", "{zh}坏了保几年？"],
    "delivery": ["我在{city_zh}，几天能收到货？", "发货到{city_zh}大概几天？"],
}
POLICY_QUESTIONS = {
    "support-hours": ["Can I get help from your team on a Sunday at 3 am?",
                      "Is your help desk ever closed?", "晚上三点能联系到客服吗？",
                      "你们客服几点下班？"],
    "support-phone": ["What number do I ring to speak to your team?",
                      "Give me a telephone line for help please", "打电话找客服拨哪个号码？",
                      "你们的热线号码是什么？"],
    "return-window": ["What's the time limit for bringing back an item I don't want?",
                      "Up to how many days after it arrives can I return a purchase?",
                      "收到货多少天以内还能退？", "买了不喜欢，几天内可以退货？"],
    "refund-time": ["After you get my parcel back, how soon is the money refunded?",
                    "How many working days until a refund lands in my account?",
                    "退货寄回后多久能收到退款？", "退款几个工作日到账？"],
    "free-shipping": ["From what order value do I stop paying for delivery?",
                      "How much do I have to spend to get free postage?",
                      "买多少钱可以包邮？", "满多少免邮费？"],
    "express": ["What does the fastest delivery option cost?",
                "Is there a quicker delivery if I pay extra, and how much?",
                "加急配送要多少钱？", "想明天就收到，快递加急怎么收费？"],
    "warranty-claim": ["My lamp stopped working and it's still under guarantee - who do I contact?",
                       "Where should I write to for a faulty product under guarantee?",
                       "灯坏了还在保修期内，找谁处理？", "保修申请发到哪个邮箱？"],
    "payment": ["Can I check out with WeChat Pay?", "Which ways of paying does your shop take?",
                "可以用微信付款吗？", "结账能用哪些方式付钱？"],
    "gift-cards": ["Which values do your gift vouchers come in?",
                   "I'd like to buy a present voucher - what amounts are there?",
                   "礼品卡有哪些面额？", "礼品卡会过期吗？"],
    "store": ["Is there a shop I can visit in person, and where?",
              "What's the street address of your main shop?", "你们实体店的地址是什么？",
              "线下门店在哪条路？"],
    "cancel": ["I changed my mind right after ordering - can I still call it off?",
               "Until when can I withdraw an order without paying anything?",
               "刚下的单还能撤销吗？", "订单在什么时候之前可以免费取消？"],
    "price-match": ["If I find the same lamp cheaper elsewhere, will you match it?",
                    "Do you refund the difference when a lamp gets cheaper somewhere else?",
                    "别家卖得更便宜，你们会补差价吗？", "你们保价多少天？"],
}
UNANSWERABLE = [
    ("How much is the Zephyr standing desk?", "en"),
    ("What does the Nimbus ceiling fan cost?", "en"),
    ("Does the Quasar smart speaker come in red?", "en"),
    ("How many watts does the Vega projector use?", "en"),
    ("What is the warranty on the Titan office chair?", "en"),
    ("Price of the Solstice heated blanket?", "en"),
    ("How long does delivery to Cairo take?", "en"),
    ("How many days to ship an order to Nairobi?", "en"),
    ("I live in Reykjavik, when would my parcel arrive?", "en"),
    ("Shipping time to Buenos Aires?", "en"),
    ("Do you offer an installation service for ceiling lights?", "en"),
    ("Can I pay in monthly installments?", "en"), ("Is there a student discount?", "en"),
    ("Do you have a loyalty points programme?", "en"),
    ("Do you give discounts on bulk orders for hotels?", "en"),
    ("Can I trade in my old lamp for credit?", "en"),
    ("Do you recycle old light bulbs?", "en"),
    ("Are your lamps certified for use in bathrooms?", "en"),
    ("Do you have a franchise programme?", "en"),
    ("Can I collect my order at a pickup locker?", "en"),
    ("Zephyr 升降桌多少钱？", "zh"), ("Nimbus 吊扇的价格是多少？", "zh"),
    ("Vega 投影仪保修几年？", "zh"), ("Titan 办公椅有哪些颜色？", "zh"),
    ("Quasar 智能音箱是多少瓦的？", "zh"), ("Solstice 电热毯卖多少？", "zh"),
    ("寄到开罗要多久？", "zh"), ("发货到拉萨大概几天？", "zh"),
    ("我在内罗毕，几天能收到货？", "zh"),
    ("寄到布宜诺斯艾利斯要几天？", "zh"),
    ("你们提供上门安装服务吗？", "zh"), ("可以分期付款吗？", "zh"), ("有学生优惠吗？", "zh"),
    ("你们有会员积分吗？", "zh"), ("酒店批量采购有折扣吗？", "zh"), ("可以以旧换新吗？", "zh"),
    ("你们回收旧灯泡吗？", "zh"), ("你们的灯可以在浴室里用吗？", "zh"), ("可以加盟你们吗？", "zh"),
    ("可以在快递柜自提吗？", "zh"), ("你们开具增值税专用发票吗？", "zh"),
    ("Do you ship lamps with a UK plug?", "en"),
]


def generate() -> list[dict]:
    rng = random.Random(SEED)
    rows = []
    for entry_id, questions in POLICY_QUESTIONS.items():
        rows += [{"question": q, "lang": "zh" if any(ord(c) > 0x2E7F for c in q) else "en",
                  "entry": entry_id} for q in questions]
    for name in PRODUCTS:
        key, zh = name.lower().replace(" ", "-"), _zh_name(name)
        for kind in ("price", "colors", "power", "warranty"):
            rows.append({"question": rng.choice(EN[kind]).format(name=name), "lang": "en",
                         "entry": f"{key}-{kind}"})
            rows.append({"question": rng.choice(ZH[kind]).format(zh=zh, name=name),
                         "lang": "zh", "entry": f"{key}-{kind}"})
    for city, (city_zh, _) in CITIES.items():
        rows.append({"question": rng.choice(EN["delivery"]).format(city=city), "lang": "en",
                     "entry": f"delivery-{city.lower()}"})
        rows.append({"question": rng.choice(ZH["delivery"]).format(city_zh=city_zh),
                     "lang": "zh", "entry": f"delivery-{city.lower()}"})
    rows += [{"question": q, "lang": lang, "entry": None} for q, lang in UNANSWERABLE]
    return rows


def load(path: Path = HELDOUT) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


if __name__ == "__main__":
    rows = generate()
    HELDOUT.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                       encoding="utf-8")
    answerable = [r for r in rows if r["entry"]]
    print(f"wrote {len(answerable)} answerable ({sum(r['lang'] == 'zh' for r in answerable)} "
          f"in Chinese) and {len(rows) - len(answerable)} unanswerable questions to {HELDOUT}")
