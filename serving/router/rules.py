"""The routing decision tree as a readable YAML rule file an operator can review and edit.

    version: 1
    tree:
      id: root
      when: {feature: p_complaint, above: 0.35}   # strictly greater than
      then: {id: complaint, tier: large}
      else: {...}

Every node has an `id`; a leaf names a configured `tier`, and its id is the rule id that the
`x-onlycs-route` header and the routing metric report. Loading validates the whole
file: unknown features, bad tiers, duplicate ids and malformed nodes are errors
that name the node's path.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


class RulesError(ValueError):
    pass


@dataclass(frozen=True)
class Step:
    node: str
    feature: str
    value: float
    threshold: float
    went: str  # "then" (value > threshold) or "else"


@dataclass(frozen=True)
class Node:
    id: str
    tier: str | None = None
    feature: str | None = None
    threshold: float = 0.0
    then: Node | None = None
    otherwise: Node | None = None


@dataclass(frozen=True)
class Vocabulary:
    """What a rule file may name: the router's features and the configured tiers."""

    features: frozenset[str]
    tiers: tuple[str, ...]


@dataclass(frozen=True)
class RuleTree:
    root: Node
    features: frozenset[str]

    @property
    def referenced(self) -> frozenset[str]:
        """Features some split tests: the router computes costly ones only if listed."""
        found, stack = set(), [self.root]
        while stack:
            node = stack.pop()
            if node.tier is None:
                found.add(node.feature)
                stack += [node.then, node.otherwise]
        return frozenset(found)

    def decide(self, values: dict[str, float]) -> tuple[str, str, list[Step]]:
        """(tier, rule id, path) for one request's feature values."""
        node, path = self.root, []
        while node.tier is None:
            value = values.get(node.feature, 0.0)
            went = "then" if value > node.threshold else "else"
            path.append(Step(node.id, node.feature, value, node.threshold, went))
            node = node.then if went == "then" else node.otherwise
        return node.tier, node.id, path


def _parse(raw: Any, where: str, known: Vocabulary, ids: set[str]) -> Node:
    if not isinstance(raw, dict):
        raise RulesError(f"{where}: a node must be a mapping")
    node_id = raw.get("id")
    if not isinstance(node_id, str) or not node_id:
        raise RulesError(f"{where}: every node needs a string `id`")
    if node_id in ids:
        raise RulesError(f"{where}: duplicate id {node_id!r}")
    ids.add(node_id)
    if "tier" in raw:
        if set(raw) - {"id", "tier", "samples"}:
            raise RulesError(f"{where} ({node_id}): a leaf has only id and tier")
        if raw["tier"] not in known.tiers:
            raise RulesError(f"{where} ({node_id}): tier {raw['tier']!r} is not configured; "
                             f"tier must be one of {', '.join(known.tiers)}")
        return Node(node_id, tier=raw["tier"])
    when = raw.get("when")
    if not isinstance(when, dict) or set(when) != {"feature", "above"}:
        raise RulesError(f"{where} ({node_id}): `when` must be {{feature, above}}")
    if when["feature"] not in known.features:
        raise RulesError(f"{where} ({node_id}): unknown feature {when['feature']!r}")
    if isinstance(when["above"], bool) or not isinstance(when["above"], int | float):
        raise RulesError(f"{where} ({node_id}): `above` must be a number")
    if "then" not in raw or "else" not in raw:
        raise RulesError(f"{where} ({node_id}): a split needs both `then` and `else`")
    return Node(node_id, feature=when["feature"], threshold=float(when["above"]),
                then=_parse(raw["then"], f"{where}.then", known, ids),
                otherwise=_parse(raw["else"], f"{where}.else", known, ids))


def parse_rules(text: str, known_features: frozenset[str], tiers: Collection[str]
                ) -> RuleTree:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RulesError(f"not valid YAML: {exc}") from None
    if not isinstance(raw, dict) or raw.get("version") != 1 or "tree" not in raw:
        raise RulesError("a rule file is a mapping with `version: 1` and a `tree`")
    known = Vocabulary(known_features, tuple(tiers))
    return RuleTree(_parse(raw["tree"], "tree", known, set()), known_features)


def load_rules(path: Path, known_features: frozenset[str], tiers: Collection[str]
               ) -> RuleTree:
    try:
        return parse_rules(path.read_text(encoding="utf-8"), known_features, tiers)
    except RulesError as exc:
        raise RulesError(f"{path}: {exc}") from None


def dump_tree(node: dict) -> str:
    return yaml.safe_dump({"version": 1, "tree": node}, sort_keys=False, allow_unicode=True)


def as_dict(node: Node) -> dict:
    if node.tier is not None:
        return {"id": node.id, "tier": node.tier}
    return {"id": node.id, "when": {"feature": node.feature, "above": node.threshold},
            "then": as_dict(node.then), "else": as_dict(node.otherwise)}
