"""The results of `benchmarks/scale.py`: one worker run, comparisons, the table, the ratios."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

PROFILE_FIELDS = ("features", "segment", "rfm_segment", "rule_segments")
#: One user's compared fields, and their recommendations (compared for information only).
Profile = tuple[tuple[bytes | None, ...], bytes | None]


@dataclass
class WorkerRun:
    """One timed drain of the backlog by `processes` worker processes (per-process lists are
    in process-id order); `profiles` only with `--compare`."""

    processes: int
    events: int
    wall_s: float
    startup_s: float
    processing_s: float
    empty_run_s: float
    exit_s: list[float]
    peak_rss_mb: list[float]
    cpu_s: list[float]
    redis_cpu_s: float
    other_cpu_s: float
    thread_cpu_s: list[dict[str, float]]
    users: int
    dead_letters: int
    #: The live quality record (`<prefix>:quality:recs`) after the drain: per variant.
    quality: dict[str, Any] = field(default_factory=dict)
    profiles: dict[str, Profile] = field(default_factory=dict, repr=False)

    @property
    def events_per_s(self) -> float:
        return self.events / self.wall_s

    @property
    def processing_events_per_s(self) -> float:
        return self.events / self.processing_s if self.processing_s > 0 else 0.0


def compare(base: dict[str, Profile], other: dict[str, Profile]) -> dict[str, int]:
    """How many users differ, per compared field, and in their recommendations."""
    users = set(base) | set(other)
    missing = sum(1 for u in users if u not in base or u not in other)
    both = [u for u in users if u in base and u in other]
    per_field = {
        name: sum(1 for u in both if base[u][0][i] != other[u][0][i])
        for i, name in enumerate(PROFILE_FIELDS)
    }
    return {
        "users": len(users),
        "missing": missing,
        "profiles_differ": sum(1 for u in both if base[u][0] != other[u][0]),
        **per_field,
        "recs_differ": sum(1 for u in both if base[u][1] != other[u][1]),
        "rec_items_differ": sum(1 for u in both if rec_items(base[u][1]) != rec_items(other[u][1])),
    }


def rec_items(recs: bytes | None) -> list[Any]:
    """The recommended item ids, best first (scores and sources aside)."""
    return [item["item_id"] for item in orjson.loads(recs)["items"]] if recs else []


def table(bare: list[dict[str, Any]], runs: list[WorkerRun]) -> str:
    lines = [
        "| run | events | wall s | events/s | start-up s | events/s after start-up | "
        "empty run s | peak RSS MB | CPU s | Redis CPU s | other CPU s | users | "
        "dead-letter XLEN |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for b in bare:
        lines.append(
            f"| bare I/O {b['when']}, {b['processes']} proc | {b['events']:,} | "
            f"{b['seconds']:.2f} | {b['events_per_s']:,.0f} | - | - | - | "
            f"{' / '.join(map(str, b['peak_rss_mb']))} | {' / '.join(map(str, b['cpu_s']))} "
            "| - | - | - | - |"
        )
    for r in runs:
        lines.append(
            f"| worker, {r.processes} proc | {r.events:,} | {r.wall_s:.1f} | "
            f"{r.events_per_s:,.0f} | {r.startup_s:.1f} | {r.processing_events_per_s:,.0f} | "
            f"{r.empty_run_s:.1f} | {' / '.join(map(str, r.peak_rss_mb))} | "
            f"{' / '.join(map(str, r.cpu_s))} | {r.redis_cpu_s} | {r.other_cpu_s} | {r.users:,} | "
            f"{r.dead_letters} |"
        )
    return "\n".join(lines)


def ratios(bare: list[dict[str, Any]], runs: list[WorkerRun]) -> dict[str, float]:
    """2 proc / 1 proc (target >= 1.6) and 1 proc / bare I/O 1 proc (target >= 0.06)."""
    by_n = {r.processes: r for r in runs}
    out: dict[str, float] = {}
    one = by_n.get(1)
    for n, run in sorted(by_n.items()):
        if one is not None and n != 1:
            out[f"{n} proc / 1 proc"] = run.events_per_s / one.events_per_s
            out[f"{n} proc / 1 proc, after start-up"] = (
                run.processing_events_per_s / one.processing_events_per_s
            )
        if one is not None and n != 1:
            for variant, q in run.quality.items():
                base = one.quality.get(variant, {}).get("recall")
                if base:
                    out[f"{n} proc / 1 proc, live Recall@k ({variant})"] = q["recall"] / base
    bare_one = [b["events_per_s"] for b in bare if b["processes"] == 1]
    if one is not None and bare_one:
        out["1 proc / bare I/O 1 proc"] = one.events_per_s / (sum(bare_one) / len(bare_one))
    return out


def report(
    as_json: bool,
    events: int,
    partitions: int,
    max_future_s: float,
    bare: list[dict[str, Any]],
    runs: list[WorkerRun],
    compared: dict[str, dict[str, int]],
) -> None:
    result: dict[str, Any] = {
        "events": events,
        "partitions": partitions,
        "max_future_s": max_future_s,
        "bare": bare,
        "workers": [
            {
                **{k: v for k, v in asdict(r).items() if k != "profiles"},
                "events_per_s": r.events_per_s,
                "processing_events_per_s": r.processing_events_per_s,
            }
            for r in runs
        ],
        "ratios": ratios(bare, runs),
        "compare": compared,
    }
    if as_json:
        print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
        return
    print(f"{events:,} events, {partitions} partitions, nproc {os.cpu_count()}")
    print(table(bare, runs))
    for r in runs:
        for i, threads in enumerate(r.thread_cpu_s):
            shown = ", ".join(f"{name} {s:.1f}" for name, s in threads.items())
            print(f"threads' CPU s, {r.processes} proc, process {i}: {shown}")
    for r in runs:
        for variant, q in r.quality.items():
            print(
                f"live quality, {r.processes} proc, {variant} ({q.get('model')}): "
                f"Recall@k {q['recall']:.4f}, NDCG {q['ndcg']:.4f}, n {q['n']:,}"
            )
    for name, value in result["ratios"].items():
        print(f"{name}: {value:.2f}")
    for name, diff in compared.items():
        print(f"{name}: " + ", ".join(f"{k} {v}" for k, v in diff.items()))
