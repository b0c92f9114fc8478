"""Live recommendation quality per A/B variant: the windows of scored interactions.

Every interaction is first a test, then a lesson (prequential evaluation, Vinagre, Jorge &
Gama 2014): before the models learn that a user touched an item, the list last sent to that
user is checked for it. The test runs where the list is kept, in the user-keyed outputs step
(`tailor.operators.user_outputs`); what it yields is a rank (1..k, 0 for a miss) per interaction,
with the interaction's place in the models' learning order (`seq`). `LiveQuality` adds those
ranks, in that order, to a sliding window per variant (`tailor.state.recs.prequential`), and
`report()` gives what Redis and the gauges show.

>>> quality = LiveQuality.build({"all": "hybrid"}, window=2, k=3)
>>> quality.add([(2, "all", 0), (1, "all", 1), (3, "all", 2)])  # applied in seq order
>>> report = quality.report()
>>> report.version, report.record["all"]["recall"], report.record["all"]["mrr"]
(3, 0.5, 0.25)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypedDict

from tailor.state.crossing import crossing
from tailor.state.recs.prequential import Means, Prequential

__all__ = ["LiveQuality", "QualityReport", "Scored", "VariantQuality"]

#: One scored interaction: (place in the models' learning order, variant, rank; 0 = a miss).
Scored = tuple[int, str, int]


class VariantQuality(TypedDict):
    """One variant's live quality over the window."""

    model: str
    recall: float
    ndcg: float
    mrr: float
    n: int


@crossing
@dataclass(frozen=True, slots=True)
class QualityReport:
    """Live quality per variant, for Redis; `version` (events scored) orders reports."""

    version: int
    record: dict[str, VariantQuality]


@dataclass
class LiveQuality:
    """A window of ranks per variant, and the model each variant serves (for the report)."""

    assigned: dict[str, str]  # variant → model name
    windows: dict[str, Prequential]

    @classmethod
    def build(cls, assigned: Mapping[str, str], window: int = 10_000, k: int = 10) -> LiveQuality:
        return cls(
            assigned=dict(assigned),
            windows={variant: Prequential(window, k) for variant in sorted(assigned)},
        )

    def add(self, scored: Iterable[Scored]) -> None:
        """Add interactions scored elsewhere, in their learning order (`seq`), whatever order
        they come in: with one models step that is the order a single window saw them in."""
        windows = self.windows
        for _seq, variant, rank in sorted(scored):
            window = windows.get(variant)
            if window is not None:  # a variant dropped from the config since the list was sent
                window.add_rank(rank)

    def to_snapshot(self) -> dict[str, Any]:
        """Plain data (`tailor.state.snapshots`): the variants' models and each window."""
        return {
            "assigned": dict(self.assigned),
            "windows": {variant: w.to_snapshot() for variant, w in self.windows.items()},
        }

    @classmethod
    def from_snapshot(cls, data: Mapping[str, Any]) -> LiveQuality:
        return cls(
            assigned=dict(data["assigned"]),
            windows={v: Prequential.from_snapshot(w) for v, w in data["windows"].items()},
        )

    def report(self) -> QualityReport:
        """Quality per variant over the window: what the metrics and Redis show."""
        out: dict[str, VariantQuality] = {}
        scored = 0
        for variant, window in sorted(self.windows.items()):
            means: Means = window.window_means()
            out[variant] = VariantQuality(
                model=self.assigned[variant],
                recall=means["recall"],
                ndcg=means["ndcg"],
                mrr=means["mrr"],
                n=int(means["n"]),
            )
            scored += int(window.totals()["n"])
        return QualityReport(scored, out)
