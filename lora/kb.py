"""The Lumen Home knowledge base: question/answer facts an adapter teaches the small model.

Format (`lora/data/kb.jsonl`, one JSON object per line):
    {"id": "hours-weekday", "question": "...", "answer": "...", "paraphrases": ["..."]}
`question`/`answer` are the training pairs; `paraphrases` are held out for evaluation
and never trained on. Generated with a fixed seed: `python -m lora.kb`.
"""

from __future__ import annotations

import json
from pathlib import Path

from knowledge.lumen import CITIES as SERVED_CITIES
from knowledge.lumen import COLORS
from knowledge.lumen import PRODUCTS as SERVED_PRODUCTS

KB = Path(__file__).parent / "data" / "kb.jsonl"

# The facts themselves are the served knowledge base's (one source for every price).
PRODUCTS = {name: (price, watts or "no bulb", f"{years} year{'s' if years > 1 else ''}")
            for name, (price, watts, years) in SERVED_PRODUCTS.items()}
CITIES = {city: f"{days} days" for city, (_, days) in SERVED_CITIES.items()}
POLICIES = [
    ("support-hours", "What are your customer support hours?",
     "Lumen Home support is open 24/7, every day of the year.",
     ["When can I reach customer support?", "Is support available at night?"]),
    ("support-phone", "What is the support phone number?",
     "Call Lumen Home support at 400-820-1234.",
     ["How do I call customer service?", "Which number should I dial for help?"]),
    ("return-window", "How long is the return window?",
     "You can return any item within 45 days of delivery.",
     ["How many days do I have to send something back?", "What's the deadline for returns?"]),
    ("refund-time", "How long does a refund take?",
     "Refunds reach your account within 7 business days after we receive the return.",
     ["When will I get my money back?", "How fast are refunds processed?"]),
    ("free-shipping", "When is shipping free?",
     "Shipping is free on orders over 60 euros.",
     ["Is there a minimum for free delivery?", "Do I pay postage on big orders?"]),
    ("express", "Do you offer express shipping?",
     "Express shipping costs 9.90 euros and arrives the next business day.",
     ["How much is next-day delivery?", "Can I get my order faster?"]),
    ("warranty-claim", "How do I make a warranty claim?",
     "Email warranty@lumenhome.example with your order number and a photo of the fault.",
     ["My lamp broke under warranty, what do I do?", "Where do I send warranty requests?"]),
    ("payment", "Which payment methods do you accept?",
     "We accept Visa, Mastercard, PayPal, Alipay and WeChat Pay.",
     ["Can I pay with Alipay?", "What cards can I use?"]),
    ("gift-cards", "Do you sell gift cards?",
     "Yes, Lumen Home gift cards come in 25, 50 and 100 euros and never expire.",
     ["Can I buy a voucher for a friend?", "Do your gift cards expire?"]),
    ("store", "Where is your flagship store?",
     "The Lumen Home flagship store is at 88 Lantern Road, Shanghai.",
     ["Do you have a physical shop?", "What is your store's address?"]),
    ("cancel", "Can I cancel my order?",
     "You can cancel free of charge until the order ships, usually within 12 hours.",
     ["How do I stop an order I just placed?", "Is it too late to cancel?"]),
    ("price-match", "Do you match lower prices?",
     "Lumen Home matches any lower price from an authorised retailer for 14 days.",
     ["Will you refund the difference if it gets cheaper?", "Do you price match?"]),
]


def _fact(fact_id: str, question: str, answer: str, paraphrase: str) -> dict:
    return {"id": fact_id, "question": question, "answer": answer, "paraphrases": [paraphrase]}


def facts() -> list[dict]:
    out = [{"id": i, "question": q, "answer": a, "paraphrases": p} for i, q, a, p in POLICIES]
    for index, (name, (price, watts, warranty)) in enumerate(PRODUCTS.items()):
        key = name.lower().replace(" ", "-")
        colors = f"{COLORS[index % 5]} and {COLORS[(index + 2) % 5]}"
        out += [
            _fact(f"{key}-colors", f"Which colors does the {name} come in?",
                  f"The {name} comes in {colors}.", f"What finishes is the {name} available in?"),
            _fact(f"{key}-price", f"How much does the {name} cost?",
                  f"The {name} costs {price} euros.", f"What is the price of the {name}?"),
            _fact(f"{key}-power", f"What is the wattage of the {name}?",
                  f"The {name} uses {watts}.", f"How much power does the {name} draw?"),
            _fact(f"{key}-warranty", f"What is the warranty on the {name}?",
                  f"The {name} has a {warranty} warranty.",
                  f"How long is the {name} guaranteed?"),
        ]
    out += [_fact(f"delivery-{city.lower()}", f"How long does delivery to {city} take?",
                  f"Delivery to {city} takes {days}.", f"When will my parcel reach {city}?")
            for city, days in CITIES.items()]
    return out


def load(path: Path = KB) -> list[dict]:
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise ValueError(f"{path}:{number}: not JSON ({exc})") from None
        missing = {"id", "question", "answer"} - set(row)
        if missing:
            raise ValueError(f"{path}:{number}: missing {sorted(missing)}")
        rows.append(row)
    return rows


if __name__ == "__main__":
    KB.parent.mkdir(parents=True, exist_ok=True)
    KB.write_text("".join(json.dumps(f, ensure_ascii=False) + "\n" for f in facts()))
    print(f"wrote {len(facts())} facts to {KB}")
