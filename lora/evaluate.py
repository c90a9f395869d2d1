"""`onlycs lora eval`: fact accuracy on the held-out paraphrased questions, base model
against adapter, asked through the running appliance (the real serving path).

An answer counts as right when it contains the fact's key terms: its numbers, or,
for facts without numbers, its last three words.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx

from lora.kb import load

_NUMBER = re.compile(r"\d[\d.,/-]*\d|\d")


def key_terms(answer: str) -> list[str]:
    numbers = [n.rstrip(".,") for n in _NUMBER.findall(answer)]
    if numbers:
        return numbers
    words = re.findall(r"[A-Za-z]+", answer)
    return [w.lower() for w in words[-3:]]


def correct(answer: str, reply: str) -> bool:
    text = reply.lower()
    return all(term.lower() in text for term in key_terms(answer))


KNOWLEDGE_HEADER = "x-onlycs-knowledge"


def evaluate(client: httpx.Client, models: list[str], kb_path, *,
             max_tokens: int = 48, progress: Callable[[str], None] = print,
             grounding: bool = False) -> dict:
    """`grounding`: each model also answers with the served knowledge base in front
    (scores keyed `<model> +kb`)."""
    facts = load(kb_path)
    questions = [(f, q) for f in facts for q in f.get("paraphrases", [])]
    scores = {}
    runs = [(m, "off") for m in models] + ([(m, "on") for m in models] if grounding else [])
    for model, knowledge in runs:
        name = model if knowledge == "off" else f"{model} +kb"
        right = 0
        for fact, question in questions:
            response = client.post("/v1/chat/completions", headers={
                KNOWLEDGE_HEADER: knowledge}, json={
                "model": model, "max_tokens": max_tokens, "temperature": 0,
                "messages": [{"role": "user", "content": question}]})
            response.raise_for_status()
            right += correct(fact["answer"], response.json()["choices"][0]["message"]["content"])
        scores[name] = {"correct": right, "questions": len(questions),
                        "accuracy": round(right / len(questions), 4)}
        progress(f"{name}: {right}/{len(questions)}")
    return scores
