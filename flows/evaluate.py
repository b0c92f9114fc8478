"""`tailor evaluate`: prequential (test-then-train) replay of a dataset through recommenders.

The protocol (Vinagre, Jorge & Gama 2014), stated once here and in docs/benchmarks.md:

* every event with an item is a positive interaction, whatever its type (a rating, a view, a
  purchase); events are taken in the adapter's order, which is event-time order;
* before a model learns an interaction (user, item), it recommends the top `k` for that user
  from what it knows so far, excluding every item the user already interacted with; the
  interaction scores Recall@k (hit or not), NDCG@k and reciprocal rank from the item's place;
* a repeat of an item the user already had is learned but not scored (it was excluded, so it
  could never be a hit); a user's first interaction is scored (the model can only guess);
* every model sees the same events in the same order, each in its own process, so µs per
  event and peak memory are its own.

>>> parse_models("mostpop, cooc")
['mostpop', 'cooc']
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import resource
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

from tailor.flows.config import Config, shipped
from tailor.flows.progress_bar import ProgressBar
from tailor.operators.replay.adapters import read_payloads
from tailor.state.recs.base import Interaction, Recommender
from tailor.state.recs.prequential import Prequential
from tailor.state.recs.settings import MODELS, RecSettings, build

__all__ = [
    "MODELS",
    "Result",
    "evaluate",
    "load_interactions",
    "parse_models",
    "push_history",
    "settings_of",
]


@dataclass(frozen=True)
class Result:
    """One model's line of the table."""

    model: str
    events: int  # interactions scored
    recall: float
    ndcg: float
    mrr: float
    coverage: float  # share of the catalogue ever recommended
    us_per_event: float  # recommend + learn, per interaction replayed
    peak_mb: float  # growth of the process's peak RSS while replaying


def settings_of(config: Config) -> RecSettings:
    """The recommender settings of a configuration."""
    return RecSettings.of(config.recs, config.segments.seed)


#: Replay cost of each model relative to popularity (the µs/event of its MovieLens replay):
#: the scheduling order, the costliest first; unlisted models count 1.
RELATIVE_COST = {"hybrid": 40, "cooc": 12, "isgd": 12, "category": 4}


def parse_models(text: str) -> list[str]:
    """Comma-separated model names, checked against `MODELS`."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in MODELS]
    if unknown or not names:
        raise ValueError(f"unknown models {unknown}; choose from {sorted(MODELS)}")
    return names


def load_interactions(
    paths: Sequence[Path], adapter: str | None = None, settings: RecSettings | None = None
) -> list[Interaction]:
    """The positive interactions of the files, in replay order (events without an item skip),
    weighted by event type as `settings` says (None: as the shipped settings say)."""
    settings = settings or settings_of(shipped())
    out: list[Interaction] = []
    for path in paths:
        for payload in read_payloads(path, adapter):
            event = orjson.loads(payload)
            item = event.get("item_id")
            if item is None or event.get("user_id") is None:
                continue
            categories = event.get("category") or []
            out.append(
                Interaction(
                    str(event["user_id"]),
                    str(item),
                    float(event["ts"]),
                    settings.weight_of(event.get("type")),
                    tuple(map(str, categories))
                    if isinstance(categories, list)
                    else (str(categories),),
                )
            )
    return out


def replay(
    model: Recommender,
    interactions: Iterable[Interaction],
    k: int,
    history_len: int,
    tick: Callable[[int], None] = lambda _n: None,
) -> Prequential:
    """Test then train, interaction by interaction; the quality over the whole replay."""
    quality = Prequential(window=1, k=k)
    seen: dict[str, set[str]] = {}
    histories: dict[str, list[str]] = {}
    for n, event in enumerate(interactions, 1):
        mine = seen.get(event.user)
        if mine is None:
            mine = seen[event.user] = set()
            histories[event.user] = []
        history = histories[event.user]
        if event.item not in mine:
            recs = model.recommend(event.user, history, event.ts, k, mine)
            quality.update(event.item, [item for item, _ in recs])
        model.learn_one(event, history, mine)
        mine.add(event.item)
        push_history(history, event.item, history_len)
        if n % 1000 == 0:
            tick(n)
    return quality


def push_history(history: list[str], item: str, history_len: int) -> None:
    """The user's recent items as the user-state step keeps them: distinct, newest last."""
    if item in history:
        history.remove(item)
    history.append(item)
    del history[:-history_len]


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _run_one(name: str, config: Config, interactions: list[Interaction], k: int) -> Result:
    catalogue = len({event.item for event in interactions})
    before = _peak_mb()
    model = build(name, settings_of(config))
    with ProgressBar(f"{name}", len(interactions)) as progress:
        started = time.perf_counter()
        quality = replay(model, interactions, k, config.state.history_len, progress.update)
        elapsed = time.perf_counter() - started
    totals = quality.totals()
    return Result(
        model=name,
        events=int(totals["n"]),
        recall=totals["recall"],
        ndcg=totals["ndcg"],
        mrr=totals["mrr"],
        coverage=quality.coverage(catalogue),
        us_per_event=elapsed / max(len(interactions), 1) * 1e6,
        peak_mb=max(_peak_mb() - before, 0.0),
    )


def _child(name: str, config: Config, interactions: list[Interaction], k: int, pipe: Any) -> None:
    pipe.send(asdict(_run_one(name, config, interactions, k)))
    pipe.close()


def evaluate(
    config: Config,
    interactions: list[Interaction],
    models: Sequence[str],
    k: int = 10,
    jobs: int = 1,
) -> list[Result]:
    """Each model in a forked process of its own (peak memory and timing are its own),
    `jobs` at a time, the slowest first (so the others fill the remaining slots while it
    runs, instead of it starting last); results in the order of `models`."""
    context = multiprocessing.get_context("fork")
    results: dict[str, Result] = {}
    pending = sorted(models, key=lambda name: -RELATIVE_COST.get(name, 1))
    running: list[tuple[str, Any, Any]] = []
    while pending or running:
        while pending and len(running) < max(jobs, 1):
            name = pending.pop(0)
            receive, send = context.Pipe(duplex=False)
            child = context.Process(target=_child, args=(name, config, interactions, k, send))
            child.start()
            send.close()
            running.append((name, receive, child))
        ready = multiprocessing.connection.wait([receive for _, receive, _ in running])
        index = next(i for i, (_, receive, _) in enumerate(running) if receive in ready)
        name, receive, child = running.pop(index)  # whichever finished first frees its slot
        try:
            results[name] = Result(**receive.recv())
        except EOFError as exc:
            raise RuntimeError(f"evaluating {name} failed (see its traceback above)") from exc
        finally:
            child.join()
    return [results[name] for name in models]


def table(results: Sequence[Result], dataset: str, k: int = 10) -> str:
    """The results as a Markdown table, the way docs/benchmarks.md records them."""
    lines = [
        f"{dataset}: Recall@{k}, NDCG@{k} and MRR over every scored interaction",
        f"| model | Recall@{k} | NDCG@{k} | MRR | coverage | µs/event | peak MB | scored |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.model} | {r.recall:.4f} | {r.ndcg:.4f} | {r.mrr:.4f} | {r.coverage:.3f} | "
            f"{r.us_per_event:,.0f} | {r.peak_mb:,.0f} | {r.events:,} |"
        )
    return "\n".join(lines)
