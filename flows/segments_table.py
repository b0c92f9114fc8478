"""`tailor segments`: what each segment is, how big, what defines it and when it last changed.

Everything is read back from Redis (the key schema in `tailor.operators.redis.keys`): the model
record for names, z-scores and quality, the per-segment hash for the last change, the membership
sets for sizes. Rule and RFM segments are listed with their sizes too.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import Any, cast

import orjson
import redis

from tailor.flows.lookup import text
from tailor.operators.redis.keys import (
    churn_key,
    model_key,
    segment_history_key,
    segment_key,
    segments_key,
)
from tailor.state.segments.rfm_tiers import TIER_LABELS

__all__ = [
    "SegmentRow",
    "parse_infos",
    "read_history",
    "read_model",
    "read_rows",
    "render_table",
    "rows_from",
    "segment_sets",
]

#: Features shown per segment: its strongest deviations from the population.
DEFINING_FEATURES = 3


@dataclass(frozen=True)
class SegmentRow:
    """One line of the table."""

    segment: str
    name: str
    size: int
    defining: str
    last_change: str
    #: "live"; for a cluster segment nobody is in now "empty: <why>", and for one a re-fit
    #: merged into the others "retired: <what happens>" (neither is a live segment)
    status: str = "live"


#: The field of `model_key` holding the model record.
MODEL_RECORD = "record"


def read_model(client: redis.Redis, prefix: str) -> dict[str, Any]:
    """The published model record, or {} before the first one."""
    return parse_model(client.hget(model_key(prefix), MODEL_RECORD))


def parse_model(raw: Any) -> dict[str, Any]:
    """The model record as stored (JSON bytes, or None before the first one) decoded."""
    return orjson.loads(raw) if raw else {}


def read_history(client: redis.Redis, prefix: str) -> list[tuple[float, dict[str, int]]]:
    """(event time, segment → size) at each published segment model, oldest first."""
    entries = cast(
        list[tuple[bytes, dict[bytes, bytes]]], client.xrange(segment_history_key(prefix))
    )
    return [(float(fields[b"at"]), orjson.loads(fields[b"sizes"])) for _id, fields in entries]


def _defining(zscores: dict[str, float]) -> str:
    """The strongest deviations as "spend_30d +1.8σ" parts."""
    strongest = sorted(zscores.items(), key=lambda kv: (-abs(kv[1]), kv[0]))
    return ", ".join(f"{name} {z:+.1f}σ" for name, z in strongest[:DEFINING_FEATURES])


def _when(ts: float | None) -> str:
    if not ts:
        return ""
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M")


def segment_sets(prefix: str) -> str:
    """What every membership set's key starts with: its segment id follows."""
    return segment_key(prefix, "")


def _sizes(client: redis.Redis, prefix: str) -> dict[str, int]:
    head = segment_sets(prefix)
    keys = sorted(text(k) for k in client.scan_iter(match=f"{head}*", count=1000))
    return {key[len(head) :]: int(client.scard(key)) for key in keys}


def parse_infos(raw: dict[Any, Any]) -> dict[str, Any]:
    """The per-segment hash (`segments_key`) with its JSON values decoded."""
    return {text(k): orjson.loads(v) for k, v in raw.items()}


def read_rows(client: redis.Redis, prefix: str) -> list[SegmentRow]:
    """Cluster segments (from the model) first, by number; then rule and RFM segments."""
    model = read_model(client, prefix)
    infos = parse_infos(client.hgetall(segments_key(prefix)))
    return rows_from(model, infos, _sizes(client, prefix))


def rows_from(
    model: dict[str, Any], infos: dict[str, Any], sizes: dict[str, int]
) -> list[SegmentRow]:
    """The rows of what was read: the model record, the per-segment hash, each set's size.

    No I/O, so every reader builds the same rows (`tailor segments`, `tailor serve`).
    """
    clusters = model.get("segments", {})
    retired = set(model.get("retired", ()))
    rows = []
    for segment in sorted(set(clusters) | set(infos), key=_order):
        described = clusters.get(segment, {})
        info = infos.get(segment, {})
        size = sizes.get(segment, 0)
        rows.append(
            SegmentRow(
                segment=segment,
                name=info.get("name") or described.get("name", ""),  # the newest first
                size=size,
                defining=_defining(described.get("zscores", {})),
                last_change=_when(info.get("changed_at")),
                status=_retired(size) if segment in retired else _status(size, described),
            )
        )
    rows += [
        SegmentRow(segment, _label(segment), size, "", "")
        for segment, size in sorted(sizes.items())
        if segment not in clusters and segment not in infos
    ]
    return rows


def _status(size: int, described: dict[str, Any]) -> str:
    return "live" if size else _empty(described)


def _retired(size: int) -> str:
    """A segment a re-fit merged into its neighbours (`tailor.state.segments.refit`)."""
    if size:
        return f"retired at a re-fit: its {size} users move at their next update or aging"
    return "retired at a re-fit: merged into the nearest segments"


def _empty(described: dict[str, Any]) -> str:
    """Why a cluster segment has no member: every user's profile is nearer another centre
    (its anchor is where the points it learned from stood, `learned` of them)."""
    learned = described.get("learned", 0)
    return f"empty: every user is nearer another segment now (it learned from {learned} users)"


def _label(segment: str) -> str:
    """RFM tiers read as the marketing names ("Can't lose them"); rules by their name."""
    kind, _, name = segment.partition(":")
    return TIER_LABELS.get(name, name) if kind == "rfm" else name


def _order(segment: str) -> tuple[str, int, str]:
    kind, _, rest = segment.partition(":")
    return (kind, int(rest), "") if rest.isdigit() else (kind, 0, rest)


def render_table(rows: list[SegmentRow]) -> list[str]:
    """Fixed-width lines, widths fitted to the content; segments nobody is in come last,
    under a line that says so, with their reason in place of defining features."""
    head = SegmentRow("segment", "name", 0, "defining features", "last change")
    live = [r for r in rows if r.status == "live"]
    empty = [r for r in rows if r.status != "live"]
    cells = [[r.segment, r.name, str(r.size), r.defining, r.last_change] for r in live]
    cells += [[r.segment, r.name, "-", r.status, r.last_change] for r in empty]
    header = [head.segment, head.name, "size", head.defining, head.last_change]
    widths = [max(len(row[i]) for row in [header, *cells]) for i in range(len(header))]

    def line(row: list[str]) -> str:
        parts = [row[0].ljust(widths[0]), row[1].ljust(widths[1]), row[2].rjust(widths[2])]
        parts += [row[3].ljust(widths[3]), row[4]]
        return "  ".join(parts).rstrip()

    lines = [line(header), *(line(row) for row in cells[: len(live)])]
    if empty:
        lines.append("not live:")
        lines += [line(row) for row in cells[len(live) :]]
    return lines


def quality_line(client: redis.Redis, prefix: str) -> str:
    """Model version, quality and churn in one line (empty before the first record)."""
    model = read_model(client, prefix)
    if not model:
        return ""
    quality = model.get("quality", {})
    churn = {text(k): text(v) for k, v in client.hgetall(churn_key(prefix)).items()}
    parts = [f"model v{model.get('version', 0)} ({model.get('clusterer', '?')})"]
    if quality.get("silhouette") is not None:
        parts.append(f"silhouette {quality['silhouette']:.2f}")
    if "drift" in quality:
        parts.append(f"drift {quality['drift']:.2f}σ ({quality.get('drift_events', 0)} events)")
    if model.get("refits"):
        parts.append(f"re-fitted {model['refits']} times")
    if churn:
        parts.append(f"moves this hour {churn.get('moves', '0')}")
    return ", ".join(parts)


def as_json(rows: list[SegmentRow]) -> bytes:
    return orjson.dumps([asdict(r) for r in rows], option=orjson.OPT_INDENT_2)
