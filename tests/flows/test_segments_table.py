"""`tailor segments` reads what the sink wrote: names, sizes, defining features, quality."""

from __future__ import annotations

import orjson
import redis

from flows.segments_table import quality_line, read_rows, render_table

P = "tbl"


def write_state(r: redis.Redis) -> None:
    record = {
        "version": 3000,
        "clusterer": "KMeans",
        "quality": {"silhouette": 0.41, "drift": 0.2, "drift_events": 1},
        "segments": {
            "cluster:2": {"name": "old name", "zscores": {"spend_30d": 1.8, "views_1h": -0.2}},
            "cluster:10": {"name": "browsers", "zscores": {"views_1h": 2.0, "bounce_rate": -0.9}},
        },
    }
    r.hset(f"{P}:segments:model", mapping={"version": 3000, "record": orjson.dumps(record)})
    info = {"name": "big spenders", "centroid": {}, "version": 4, "changed_at": 1_767_225_600.0}
    r.hset(f"{P}:segments", "cluster:2", orjson.dumps(info))
    r.sadd(f"{P}:segment:cluster:2", "a", "b")
    r.sadd(f"{P}:segment:cluster:10", "c")
    r.sadd(f"{P}:segment:rfm:cant_lose", "a")
    r.sadd(f"{P}:segment:rule:vip", "a", "c")
    r.hset(f"{P}:segments:churn", mapping={"hour": 1, "moves": 7})


def test_rows_in_order_with_newest_names_sizes_and_labels(r: redis.Redis) -> None:
    write_state(r)
    rows = read_rows(r, P)
    assert [(x.segment, x.name, x.size) for x in rows] == [
        ("cluster:2", "big spenders", 2),  # the per-segment hash is newer than the record
        ("cluster:10", "browsers", 1),
        ("rfm:cant_lose", "Can't lose them", 1),
        ("rule:vip", "vip", 2),
    ]
    assert rows[0].defining == "spend_30d +1.8σ, views_1h -0.2σ"
    assert rows[0].last_change == "2026-01-01 00:00" and rows[1].last_change == ""
    lines = render_table(rows)
    assert lines[0].split() == ["segment", "name", "size", "defining", "features", "last", "change"]
    size_end = lines[0].index("size") + len("size")  # sizes are right-aligned under it
    assert [line[size_end - 1] for line in lines[1:]] == ["2", "1", "1", "2"]
    assert quality_line(r, P) == (
        "model v3000 (KMeans), silhouette 0.41, drift 0.20σ (1 events), moves this hour 7"
    )


def test_nothing_published_yet(r: redis.Redis) -> None:
    assert read_rows(r, P) == [] and quality_line(r, P) == ""
