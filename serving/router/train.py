"""`onlycs router train`: fit the intent classifiers and the routing tree on the
dataset's training split, write them under serving/router/model/, and evaluate on
the held-out split. scikit-learn is used here only; serving needs numpy alone."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from serving.router import dataset
from serving.router import features as feat
from serving.router.engine import DATA_DIR, MODEL_DIR, Classifier, RoutingEngine, feature_names
from serving.router.rules import dump_tree
from serving.router.sensitive import SensitiveMatcher

Step = Callable[[str], None]


def _fit_classifier(x: np.ndarray, labels: list[str]) -> Classifier:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=20.0, max_iter=2000)
    model.fit(x, labels)
    return Classifier([str(c) for c in model.classes_],
                      model.coef_.T.astype(np.float32), model.intercept_.astype(np.float32))


def _tree_to_rules(tree, names: list[str], classes: list[str]) -> dict:
    t = tree.tree_

    def node(i: int, depth: int) -> dict:
        counts = t.value[i][0]
        if t.children_left[i] == -1:
            tier = classes[int(np.argmax(counts))]
            return {"id": f"{tier}.n{i}", "tier": tier, "samples": int(t.n_node_samples[i])}
        # sklearn sends value <= threshold left; the rule file says "above" -> then.
        return {"id": f"split.n{i}",
                "when": {"feature": names[t.feature[i]], "above": round(float(t.threshold[i]), 4)},
                "then": node(t.children_right[i], depth + 1),
                "else": node(t.children_left[i], depth + 1)}

    return node(0, 0)


def kb_vectors() -> np.ndarray:
    questions = [q for q in (DATA_DIR / "kb_questions.txt").read_text().splitlines()
                 if q.strip() and not q.startswith("#")]
    return np.stack([feat.hashed_ngrams(q) for q in questions])


def train(out: Path = MODEL_DIR, step: Step = print) -> dict:
    from sklearn.tree import DecisionTreeClassifier

    from serving.router.embedder import MiniLMEmbedder

    rows = dataset.load("train")
    texts, intents = [r["text"] for r in rows], [r["intent"] for r in rows]
    out.mkdir(parents=True, exist_ok=True)
    step(f"fast intent classifier on {len(rows)} messages (hashed n-grams)")
    _fit_classifier(np.stack([feat.hashed_ngrams(t) for t in texts]), intents).save(
        out / "intent_fast.npz")
    step("embedding intent classifier (MiniLM, numpy)")
    embedder = MiniLMEmbedder()
    _fit_classifier(np.stack([embedder.embed(t) for t in texts]), intents).save(
        out / "intent_embed.npz")
    np.savez_compressed(out / "kb.npz", vectors=kb_vectors())

    step("routing tree")
    placeholder = {"id": "small.default", "tier": "small"}
    (out / "rules.yaml").write_text(dump_tree(placeholder))
    engine = RoutingEngine(SensitiveMatcher({}), model_dir=out)
    names = sorted(feature_names(engine.fast.labels))
    x = np.array([[engine.decide(t, full=True).features.get(n, 0.0) for n in names]
                  for t in texts])
    routes = [r["route"] for r in rows]
    tree = DecisionTreeClassifier(max_depth=4, min_samples_leaf=3, random_state=0)
    tree.fit(x, routes)
    (out / "rules.yaml").write_text(
        "# Routing rules, trained by `onlycs router train`; review and edit freely.\n"
        "# A split sends a request to `then` when the feature is strictly above the value.\n"
        + dump_tree(_tree_to_rules(tree, names, [str(c) for c in tree.classes_])))
    report = evaluate(out)
    (out / "eval.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def evaluate(model_dir: Path = MODEL_DIR) -> dict:
    engine = RoutingEngine(SensitiveMatcher({}), model_dir=model_dir)
    rows = dataset.load("holdout")
    decisions = [engine.decide(r["text"], full=True) for r in rows]
    routed = sum(d.tier == r["route"] for d, r in zip(decisions, rows, strict=True))
    intents = sum(d.intent == r["intent"] for d, r in zip(decisions, rows, strict=True))
    return {
        "holdout_messages": len(rows),
        "routing_accuracy": round(routed / len(rows), 4),
        "intent_accuracy": round(intents / len(rows), 4),
        "small_share": round(sum(d.tier == "small" for d in decisions) / len(rows), 4),
        "embedded_share_for_intent": round(sum(d.embedded for d in decisions) / len(rows), 4),
        "embedded_share_for_routing": round(
            sum(engine.decide(r["text"]).embedded for r in rows) / len(rows), 4),
        "large_recall": round(
            sum(d.tier == "large" for d, r in zip(decisions, rows, strict=True)
                if r["route"] == "large") / max(1, sum(r["route"] == "large" for r in rows)), 4),
    }
