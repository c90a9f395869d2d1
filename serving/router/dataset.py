"""The customer-service routing dataset of the fictional shop "Lumen Home".

Messages are written from templates and slot values with a fixed seed, so the
shipped `data/routing.jsonl` is reproducible (`python -m serving.router.dataset`).
Each line: {"text", "intent", "route", "split"}; about a fifth is held out.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

DATA = Path(__file__).parent / "data" / "routing.jsonl"
SEED = 20261124
HOLDOUT = 0.2

SLOTS = {
    "order": ["12345", "A-20931", "88120", "LH-4471", "30077", "991-22"],
    "item": ["desk lamp", "floor lamp", "bedside lamp", "smart bulb", "lamp shade",
             "LED strip", "ceiling light"],
    "days": ["three", "five", "ten", "two", "seven"],
    "city": ["Shanghai", "Berlin", "Austin", "Shenzhen", "Lyon", "Chengdu"],
}

TEMPLATES: dict[str, tuple[str, list[str]]] = {
    "order_status": ("small", [
        "Where is my order {order}?", "Can you check the status of order {order}?",
        "Has my order {order} shipped yet?", "What's the status of my {item} order?",
        "I ordered a {item}, when will it arrive?", "Order {order} - any update?",
        "Is order {order} confirmed?", "track order {order} please",
        "我的订单{order}到哪里了？", "订单{order}发货了吗？"]),
    "shipping": ("small", [
        "Do you ship to {city}?", "How much is shipping to {city}?",
        "How long does delivery to {city} take?", "Can I change my delivery address?",
        "Which courier do you use for {city}?", "Is express shipping available?",
        "Do you offer free shipping on a {item}?", "能寄到{city}吗？", "运费多少钱？"]),
    "refund": ("small", [
        "How do I return my {item}?", "What is your return policy?",
        "Can I get a refund for order {order}?", "How long does a refund take?",
        "I want to return the {item} I bought", "Where do I send a return?",
        "怎么申请退款？", "退货政策是什么？"]),
    "account": ("small", [
        "I forgot my password", "How do I reset my password?",
        "How can I change my email address?", "I can't log in to my account",
        "How do I delete my account?", "Where can I update my phone number?",
        "忘记密码了怎么办？", "怎么修改账号邮箱？"]),
    "product_question": ("small", [
        "Is the {item} dimmable?", "What wattage is the {item}?",
        "Does the {item} work with smart home apps?", "What colors does the {item} come in?",
        "Is the {item} in stock?", "What is the warranty on the {item}?",
        "Can the {item} be used outdoors?", "这个{item}可以调光吗？", "{item}有货吗？"]),
    "chitchat": ("small", [
        "Hello!", "Hi there", "Thanks a lot!", "Good morning", "you are helpful, thanks",
        "Have a nice day", "Who am I talking to?", "你好", "谢谢！"]),
    "complaint": ("large", [
        "This is the third time my {item} broke, this is unacceptable!",
        "I am very angry, order {order} arrived damaged and nobody answers my emails",
        "Your service is terrible, I waited {days} weeks and still no {item}",
        "I was charged twice for order {order} and I want this fixed now",
        "The {item} caught fire, this is dangerous and I want compensation",
        "Worst experience ever, the courier lost my order and support ignored me",
        "I have complained {days} times already and nothing happens, I will report you",
        "你们的服务太差了，{item}坏了没人管！", "我要投诉，订单{order}一直没到，客服也不回复"]),
    "human_handoff": ("large", [
        "I want to talk to a human", "Let me speak to your manager",
        "Can I talk to a real person please?", "Transfer me to an agent",
        "I need a human, the bot is not helping", "转人工", "我要找人工客服"]),
    "multi_step": ("large", [
        "My order {order} arrived broken, I also was charged twice and now I can't log in",
        "I need to change the address of order {order}, split it into two deliveries and "
        "use a different card for the second one",
        "The {item} stopped working after {days} days, the replacement is also faulty, "
        "what are my options for a refund or an upgrade?",
        "I returned the {item} {days} weeks ago, the refund never came, and the new order "
        "{order} is also late",
        "订单{order}少发了一件，另一件{item}也坏了，我想退一件换一件"]),
    "abuse": ("small", [
        "you stupid bot", "this is bullshit", "you idiots", "f*** you", "傻逼客服",
        "shut up you useless machine"]),
}

# The tiers the dataset's route labels name: the shipped configuration's two.
ROUTES: tuple[str, ...] = tuple(sorted({route for route, _ in TEMPLATES.values()}))


def _fill(template: str, rng: random.Random) -> str:
    return template.format(**{k: rng.choice(v) for k, v in SLOTS.items()})


OPENERS = ["", "", "Hi, ", "Hello, ", "Excuse me, ", "Hey - "]
CLOSERS = ["", "", " Thanks.", " Please help.", " Thank you!", " ASAP"]


def generate(per_template: int = 4) -> list[dict]:
    """Held-out messages come from held-out templates: phrasings never seen in training."""
    rng = random.Random(SEED)
    rows, seen = [], set()
    for intent, (route, templates) in TEMPLATES.items():
        order = list(range(len(templates)))
        rng.shuffle(order)
        held = set(order[: max(1, round(len(templates) * HOLDOUT))])
        for index, template in enumerate(templates):
            for _ in range(per_template):
                text = rng.choice(OPENERS) + _fill(template, rng) + rng.choice(CLOSERS)
                if text in seen:
                    continue
                seen.add(text)
                rows.append({"text": text, "intent": intent, "route": route,
                             "split": "holdout" if index in held else "train"})
    rng.shuffle(rows)
    return rows


def load(split: str | None = None, path: Path = DATA) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return [r for r in rows if split is None or r["split"] == split]


if __name__ == "__main__":
    DATA.parent.mkdir(parents=True, exist_ok=True)
    DATA.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in generate()),
                    encoding="utf-8")
    print(f"wrote {DATA}")
