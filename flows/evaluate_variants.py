"""`tailor evaluate --variants A,B`: an A/B test of two recommenders, replayed.

As in a live test, users are split by the same stable hash bucketing the worker uses
(`tailor.state.recs.variants`, 50/50), both recommenders learn from every interaction (they serve
the same shop), and each scored interaction of a user is scored on the list of *that user's*
variant, test-then-train (`tailor.flows.evaluate` states the protocol). The report gives each arm's
Recall, NDCG and MRR and the difference (B − A) with a 95% normal-approximation interval
(`tailor.state.recs.prequential.difference_ci`), so a team can see what a live test would likely
show before running one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tailor.flows.config import Config
from tailor.flows.evaluate import push_history, settings_of
from tailor.state.recs.base import Interaction
from tailor.state.recs.prequential import Hit, difference_ci, score_one
from tailor.state.recs.settings import build
from tailor.state.recs.variants import Variants

__all__ = ["ArmResult", "VariantsResult", "ab_replay", "render"]


@dataclass(frozen=True)
class ArmResult:
    """One arm of the test."""

    model: str
    users: int
    scored: int
    recall: float
    ndcg: float
    mrr: float


@dataclass(frozen=True)
class VariantsResult:
    """Both arms and the differences B − A as (difference, lower, upper)."""

    a: ArmResult
    b: ArmResult
    recall: tuple[float, float, float]
    ndcg: tuple[float, float, float]
    mrr: tuple[float, float, float]


def ab_replay(
    config: Config,
    interactions: Sequence[Interaction],
    models: tuple[str, str],
    k: int = 10,
    salt: str = "tailor",
) -> VariantsResult:
    """Replay with users split 50/50 between `models`; both learn everything."""
    names = ("a", "b")
    split = Variants({"a": 0.5, "b": 0.5}, salt)
    settings = settings_of(config)
    arms = {name: build(model, settings) for name, model in zip(names, models, strict=True)}
    hits: dict[str, list[Hit]] = {name: [] for name in names}
    users: dict[str, set[str]] = {name: set() for name in names}
    history_len = config.state.history_len
    seen: dict[str, set[str]] = {}
    histories: dict[str, list[str]] = {}
    for event in interactions:
        mine = seen.setdefault(event.user, set())
        history = histories.setdefault(event.user, [])
        if event.item not in mine:
            arm = split.assign(event.user)
            recs = arms[arm].recommend(event.user, history, event.ts, k, mine)
            hits[arm].append(score_one(event.item, [item for item, _ in recs], k))
            users[arm].add(event.user)
        for model in arms.values():
            model.learn_one(event, history, mine)
        mine.add(event.item)
        push_history(history, event.item, history_len)
    results = [_arm(model, len(users[n]), hits[n]) for n, model in zip(names, models, strict=True)]
    return VariantsResult(
        results[0],
        results[1],
        recall=_ci(hits, lambda h: h.recall),
        ndcg=_ci(hits, lambda h: h.ndcg),
        mrr=_ci(hits, lambda h: h.rr),
    )


def _arm(model: str, users: int, hits: list[Hit]) -> ArmResult:
    n = max(len(hits), 1)
    return ArmResult(
        model=model,
        users=users,
        scored=len(hits),
        recall=sum(h.recall for h in hits) / n,
        ndcg=sum(h.ndcg for h in hits) / n,
        mrr=sum(h.rr for h in hits) / n,
    )


def _ci(hits: dict[str, list[Hit]], score: Callable[[Hit], float]) -> tuple[float, float, float]:
    return difference_ci([score(h) for h in hits["a"]], [score(h) for h in hits["b"]])


def render(result: VariantsResult, k: int = 10) -> str:
    """Both arms and the differences, as Markdown."""
    lines = [
        f"| variant | model | users | scored | Recall@{k} | NDCG@{k} | MRR |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, arm in (("A", result.a), ("B", result.b)):
        lines.append(
            f"| {name} | {arm.model} | {arm.users:,} | {arm.scored:,} | {arm.recall:.4f} | "
            f"{arm.ndcg:.4f} | {arm.mrr:.4f} |"
        )
    for label, (diff, low, high) in (
        (f"Recall@{k}", result.recall),
        (f"NDCG@{k}", result.ndcg),
        ("MRR", result.mrr),
    ):
        lines.append(f"B - A {label}: {diff:+.4f} (95% CI {low:+.4f} .. {high:+.4f})")
    return "\n".join(lines)
