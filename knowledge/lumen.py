"""The shipped knowledge base of the fictional shop Lumen Home, in English and Chinese.

`knowledge/data/lumen-home.jsonl` is generated from these tables (`python -m knowledge.lumen`)
so that every fact has one source and both languages state the same number.
"""

from __future__ import annotations

import json
from pathlib import Path

SHIPPED = Path(__file__).parent / "data" / "lumen-home.jsonl"

# name: (price in euros, power, warranty years)
PRODUCTS = {
    "Aurora desk lamp": ("49.90", "8 W", 3), "Halo floor lamp": ("129.00", "15 W", 3),
    "Nova bedside lamp": ("35.50", "5 W", 2), "Pixel smart bulb": ("12.90", "9 W", 2),
    "Drift lamp shade": ("19.90", None, 1), "Ribbon LED strip": ("24.90", "12 W", 2),
    "Orbit ceiling light": ("89.00", "24 W", 5), "Ember table lamp": ("59.00", "7 W", 3),
    "Lumi night light": ("9.90", "1 W", 1), "Beacon outdoor lantern": ("79.00", "10 W", 5),
    "Comet reading lamp": ("44.00", "6 W", 3), "Dune wall sconce": ("65.00", "9 W", 3),
    "Echo pendant light": ("99.00", "18 W", 5), "Fable kids lamp": ("29.90", "4 W", 2),
    "Glow candle bulb": ("7.90", "4 W", 1), "Harbor desk lamp": ("74.00", "10 W", 3),
    "Iris floor lamp": ("149.00", "20 W", 5), "Jade table lamp": ("54.00", "7 W", 2),
    "Kite clip lamp": ("19.90", "5 W", 1), "Loop LED panel": ("119.00", "30 W", 5),
}
KINDS_ZH = {
    "desk lamp": "台灯", "floor lamp": "落地灯", "bedside lamp": "床头灯",
    "smart bulb": "智能灯泡", "lamp shade": "灯罩", "LED strip": "LED灯带",
    "ceiling light": "吸顶灯", "table lamp": "桌灯", "night light": "小夜灯",
    "outdoor lantern": "户外灯", "reading lamp": "阅读灯", "wall sconce": "壁灯",
    "pendant light": "吊灯", "kids lamp": "儿童灯", "candle bulb": "蜡烛灯泡",
    "clip lamp": "夹灯", "LED panel": "LED面板灯",
}
COLORS = ["white", "black", "brass", "sage green", "terracotta"]
COLORS_ZH = {"white": "白色", "black": "黑色", "brass": "黄铜色", "sage green": "鼠尾草绿",
             "terracotta": "陶土色"}
CITIES = {  # name: (Chinese name, delivery days)
    "Shanghai": ("上海", 2), "Berlin": ("柏林", 5), "Austin": ("奥斯汀", 6),
    "Shenzhen": ("深圳", 2), "Lyon": ("里昂", 5), "Chengdu": ("成都", 3),
    "Tokyo": ("东京", 4), "Sydney": ("悉尼", 7), "Madrid": ("马德里", 5),
    "Toronto": ("多伦多", 6), "Seoul": ("首尔", 4), "Milan": ("米兰", 5),
}
# id: (English questions, English answer, Chinese questions, Chinese answer, tags)
POLICIES: dict[str, tuple[list[str], str, list[str], str, list[str]]] = {
    "support-hours": (
        ["What are your customer support hours?", "When can I reach customer support?"],
        "Lumen Home support is open 24/7, every day of the year.",
        ["客服的服务时间是什么？"], "Lumen Home 客服全年无休，24/7 在线。", ["support"]),
    "support-phone": (
        ["What is the support phone number?", "How do I call customer service?"],
        "Call Lumen Home support at 400-820-1234.",
        ["客服电话是多少？"], "请拨打 Lumen Home 客服电话 400-820-1234。", ["support"]),
    "return-window": (
        ["How long is the return window?", "How many days do I have to send something back?"],
        "You can return any item within 45 days of delivery.",
        ["退货期限是多久？"], "收货后 45 天内可以退回任何商品。", ["returns"]),
    "refund-time": (
        ["How long does a refund take?", "When will I get my money back?"],
        "Refunds reach your account within 7 business days after we receive the return.",
        ["退款需要多长时间？"], "我们收到退货后，退款会在 7 个工作日内到账。", ["returns"]),
    "free-shipping": (
        ["When is shipping free?", "Is there a minimum for free delivery?"],
        "Shipping is free on orders over 60 euros.",
        ["什么情况下免运费？"], "订单满 60 欧元免运费。", ["shipping"]),
    "express": (
        ["Do you offer express shipping?", "How much is next-day delivery?"],
        "Express shipping costs 9.90 euros and arrives the next business day.",
        ["有加急快递吗？"], "加急快递收费 9.90 欧元，下一个工作日送达。", ["shipping"]),
    "warranty-claim": (
        ["How do I make a warranty claim?", "My lamp broke under warranty, what do I do?"],
        "Email warranty@lumenhome.example with your order number and a photo of the fault.",
        ["怎么申请保修？"],
        "请把订单号和故障照片发邮件到 warranty@lumenhome.example。", ["warranty"]),
    "payment": (
        ["Which payment methods do you accept?", "What cards can I use?"],
        "We accept Visa, Mastercard, PayPal, Alipay and WeChat Pay.",
        ["支持哪些付款方式？"], "我们支持 Visa、Mastercard、PayPal、支付宝和微信支付。",
        ["payment"]),
    "gift-cards": (
        ["Do you sell gift cards?", "Do your gift cards expire?"],
        "Yes, Lumen Home gift cards come in 25, 50 and 100 euros and never expire.",
        ["你们卖礼品卡吗？"], "有的，Lumen Home 礼品卡面额为 25、50 和 100 欧元，永不过期。",
        ["payment"]),
    "store": (
        ["Where is your flagship store?", "What is your store's address?"],
        "The Lumen Home flagship store is at 88 Lantern Road, Shanghai.",
        ["你们的旗舰店在哪里？"], "Lumen Home 旗舰店位于上海灯笼路 88 号（88 Lantern Road）。",
        ["store"]),
    "cancel": (
        ["Can I cancel my order?", "How do I stop an order I just placed?"],
        "You can cancel free of charge until the order ships, usually within 12 hours.",
        ["可以取消订单吗？"], "订单发货前可以免费取消，通常在下单后 12 小时内发货。", ["orders"]),
    "price-match": (
        ["Do you match lower prices?", "Do you price match?"],
        "Lumen Home matches any lower price from an authorised retailer for 14 days.",
        ["你们有保价吗？"], "14 天内，如授权零售商的价格更低，Lumen Home 会按更低价格补差。",
        ["pricing"]),
}


# More ways customers ask the shop-wide questions, as a shop's FAQ lists them (the
# "similar questions" of a customer-service knowledge base): the embedder and BM25 match a
# question against each of them. Written without looking at the evaluation sets' wording
# (tests/unit/knowledge/test_heldout.py checks that none is copied).
ALSO_ASKED: dict[str, tuple[list[str], list[str]]] = {
    "support-hours": (["Can I contact support late in the evening?",
                       "Are you open on public holidays?",
                       "What are the opening hours of your support team?"],
                      ["节假日能找到客服吗？", "客服的在线时间是几点到几点？"]),
    "support-phone": (["Is phone support available?",
                       "What's the customer service telephone number?"],
                      ["可以电话联系你们吗？", "售后电话多少？"]),
    "return-window": (["What is your return policy?", "Can I return an item I don't like?",
                       "Is there a deadline for returns?"],
                      ["退货政策是什么？", "可以退货吗？", "退货截止到哪天？"]),
    "refund-time": (["How long does it take to process a refund?",
                     "How long until a returned order is refunded?"],
                    ["退款的处理时间是多久？"]),
    "free-shipping": (["Do you offer free shipping?", "What is the free shipping threshold?",
                       "Are there shipping charges?"], ["包邮吗？", "运费怎么算？"]),
    "express": (["How fast is your quickest delivery?", "Is there a faster shipping option?",
                 "What is the price of express shipping?"],
                ["有更快的配送方式吗？", "有特快服务吗？"]),
    "warranty-claim": (["How does the warranty service work?",
                        "What do I do if a product arrives defective?",
                        "How do I contact the warranty team?"],
                       ["产品有质量问题怎么办？", "质量问题如何换货？",
                        "售后保修联系方式是什么？"]),
    "payment": (["How can I pay for my order?", "Do you accept online payment services?"],
                ["怎么付款？", "支持哪些银行卡？", "有哪些在线支付方式？"]),
    "gift-cards": (["Tell me about your gift cards.", "Can I buy a gift voucher?"],
                   ["礼品卡怎么买？", "能买购物卡送人吗？"]),
    "store": (["Do you have a retail location?", "Is there a brick-and-mortar store?",
               "Where is your showroom?"], ["有展厅吗？", "可以到店里看样品吗？"]),
    "cancel": (["How do I cancel an order?", "Is there a way to cancel a purchase?"],
               ["怎么取消订单？", "订单能撤回吗？"]),
    "price-match": (["Do you offer price matching?",
                     "If another retailer is cheaper, do you lower yours?"],
                    ["你们比价吗？", "有价格保护吗？"]),
}


# The words customers asking each policy say (`Entry.keywords`; English word starts).
KEYWORDS: dict[str, tuple[list[str], list[str]]] = {
    "support-hours": (["open", "opening hours", "hours", "close", "closed", "closing", "shut",
                       "24/7", "around the clock", "weekend", "saturday", "sunday", "holiday",
                       "christmas", "new year", "night", "midnight", "o'clock", "what time",
                       "on duty", "staffed", "monday", "tuesday", "wednesday", "thursday",
                       "friday", "morning", "afternoon", "evening", "tonight", "late", "early"],
                      ["几点", "营业", "上班", "下班", "周末", "节假日", "假期", "春节", "晚上",
                       "半夜", "夜里", "凌晨", "24小时", "全天", "早上", "上午", "下午", "星期",
                       "礼拜", "周一", "周二", "周三", "周四", "周五", "周六", "周日"]),
    "support-phone": (["phone", "call", "ring", "dial", "hotline", "helpline", "telephone",
                       "speak to", "talk to"], ["电话", "热线", "号码", "打给", "致电", "人工"]),
    "return-window": (["return", "back", "regret"],
                      ["退货", "退回", "可以退", "能退", "退吗", "无理由"]),
    "refund-time": (["refund", "money back", "reimburs", "credited", "my money"],
                    ["退款", "到账", "退钱", "钱多久"]),
    "free-shipping": (["free shipping", "free delivery", "for free", "ship free", "ships free",
                       "shipping free", "delivery free", "included", "shipping cost",
                       "shipping fee", "shipping charge", "delivery charge", "delivery fee",
                       "delivery cost", "postage", "minimum", "threshold", "spend", "basket",
                       "cart", "order value", "order total"],
                      ["包邮", "免运费", "运费", "邮费", "免邮", "满多少"]),
    "express": (["express", "next day", "next-day", "tomorrow", "faster", "fastest", "quick",
                 "urgent", "rush", "overnight", "speed"],
                ["加急", "次日", "第二天", "明天", "最快", "急", "快点"]),
    "warranty-claim": (["broken", "broke", "break", "faulty", "fault", "defect", "fail",
                        "stopped", "not working", "doesn't work", "won't turn on", "dead",
                        "flicker", "malfunction", "repair", "fix", "claim", "damaged", "crack",
                        "shatter", "light up"],
                       ["坏", "故障", "质量问题", "维修", "修", "报修", "保修", "售后", "不亮",
                        "不工作", "闪", "失灵", "出问题", "有问题", "裂", "碎"]),
    "payment": (["pay", "card", "credit", "debit", "checkout", "check out", "visa",
                 "mastercard", "paypal", "alipay", "wechat", "apple pay"],
                ["付款", "支付", "付钱", "刷卡", "信用卡", "银行卡", "支付宝", "微信", "付",
                 "万事达卡", "万事达", "维萨卡"]),
    "gift-cards": (["gift card", "gift voucher", "gift certificate", "giftcard", "voucher"],
                   ["礼品卡", "购物卡", "礼卡", "代金券", "储值卡"]),
    "store": (["store", "shop", "showroom", "in person", "visit", "address", "located",
               "location", "physical"],
              ["门店", "实体店", "地址", "展厅", "线下", "到店", "店铺", "店里", "店面", "的店",
               "店在"]),
    "cancel": (["cancel", "change my mind", "changed my mind", "call off", "withdraw"],
               ["取消", "不要了", "撤销", "撤回"]),
    "price-match": (["match", "cheaper", "lower price", "beat", "elsewhere", "another shop",
                     "another store", "other shop", "competitor", "less", "price drop",
                     "reduced"],
                    ["差价", "比价", "更便宜", "价保", "保价", "便宜", "降价", "价格保护"]),
}


def _entry(entry_id: str, en_q: list[str], en_a: str, zh_q: list[str], zh_a: str,
           tags: list[str], product: str | None = None,
           mentions: list[str] | None = None) -> dict:
    row: dict = {"id": entry_id, "questions": {"en": en_q, "zh": zh_q},
                 "answers": {"en": en_a, "zh": zh_a}, "tags": tags}
    if entry_id in KEYWORDS:
        row["keywords"] = dict(zip(("en", "zh"), KEYWORDS[entry_id], strict=True))
    if product:
        row["product"] = product
    if mentions:
        row["mentions"] = mentions
    return row


def _zh_name(name: str) -> str:
    brand, kind = name.split(" ", 1)
    return f"{brand} {KINDS_ZH[kind]}"


def entries() -> list[dict]:
    out = []
    for entry_id, (en_q, en_a, zh_q, zh_a, tags) in POLICIES.items():
        en_more, zh_more = ALSO_ASKED.get(entry_id, ([], []))
        out.append(_entry(entry_id, en_q + en_more, en_a, zh_q + zh_more, zh_a, tags))
    for index, (name, (price, watts, years)) in enumerate(PRODUCTS.items()):
        key = name.lower().replace(" ", "-")
        zh = _zh_name(name)
        brand = name.split(" ")[0]
        names = [name, zh, brand]
        colors = [COLORS[index % 5], COLORS[(index + 2) % 5]]
        zh_colors = "和".join(COLORS_ZH[c] for c in colors)
        power_en = f"The {name} uses {watts}." if watts else \
            f"The {name} is a shade only: it uses no bulb of its own."
        power_zh = f"{zh} 的功率为 {watts}。" if watts else f"{zh} 只是灯罩，本身不带灯泡。"
        out += [
            _entry(f"{key}-colors", [f"Which colors does the {name} come in?",
                                     f"What colors can I choose for the {name}?"],
                   f"The {name} comes in {colors[0]} and {colors[1]}.",
                   [f"{zh} 有哪些颜色？", f"{zh} 有什么颜色可选？"], f"{zh} 有{zh_colors}可选。",
                   ["colors"], name, names),
            _entry(f"{key}-price", [f"How much does the {name} cost?",
                                    f"What is the price of the {name}?"],
                   f"The {name} costs {price} euros.",
                   [f"{zh} 多少钱？", f"{zh} 的售价是多少？"], f"{zh} 售价 {price} 欧元。",
                   ["price"], name, names),
            _entry(f"{key}-power", [f"What is the wattage of the {name}?",
                                    f"How much power does the {name} use?"], power_en,
                   [f"{zh} 的功率是多少？", f"{zh} 用多少瓦？"], power_zh, ["power"], name,
                   names),
            _entry(f"{key}-warranty", [f"What is the warranty on the {name}?",
                                       f"How long is the {name} guaranteed?"],
                   f"The {name} has a {years} year{'s' if years > 1 else ''} warranty.",
                   [f"{zh} 保修多久？", f"{zh} 的保修期是多长？"], f"{zh} 保修 {years} 年。",
                   ["warranty"], name, names),
        ]
    for city, (city_zh, days) in CITIES.items():
        out.append(_entry(
            f"delivery-{city.lower()}", [f"How long does delivery to {city} take?",
                                         f"How many days until an order reaches {city}?"],
            f"Delivery to {city} takes {days} days.", [f"寄到{city_zh}要多久？",
                                                       f"送货到{city_zh}需要几天？"],
            f"寄到{city_zh}需要 {days} 天。", ["delivery"], None, [city, city_zh]))
    return out


if __name__ == "__main__":
    SHIPPED.parent.mkdir(parents=True, exist_ok=True)
    rows = entries()
    SHIPPED.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                       encoding="utf-8")
    print(f"wrote {len(rows)} entries to {SHIPPED}")
