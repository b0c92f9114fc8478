"""`tailor segments` reads what the sink wrote: names, sizes, defining features, quality."""

from __future__ import annotations

import orjson
import redis

from tailor.flows.segments_table import quality_line, read_rows, render_table

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


def test_a_cluster_nobody_is_in_is_not_listed_as_live(r: redis.Redis) -> None:
    """A cluster segment whose members all left is shown apart, with why, never as a live
    segment of size 0."""
    write_state(r)
    record = orjson.loads(r.hget(f"{P}:segments:model", "record") or b"{}")
    record["segments"]["cluster:5"] = {"name": "deep sessions", "zscores": {}, "learned": 12}
    r.hset(f"{P}:segments:model", "record", orjson.dumps(record))
    rows = read_rows(r, P)
    empty = [x for x in rows if x.status != "live"]
    assert [(x.segment, x.size) for x in empty] == [("cluster:5", 0)]
    assert "nearer another segment" in empty[0].status and "12 users" in empty[0].status
    assert all(x.size > 0 for x in rows if x.status == "live")
    lines = render_table(rows)
    heading = lines.index("not live:")
    assert [line.split()[0] for line in lines[heading + 1 :]] == ["cluster:5"]
    assert all("cluster:5" not in line for line in lines[:heading])


def test_a_segment_a_refit_retired_is_shown_apart_even_while_it_drains(r: redis.Redis) -> None:
    """A re-fit merges a segment under the floor into its neighbours; users still in its
    set move at their next update or aging, and until then it is not a live segment."""
    write_state(r)
    record = orjson.loads(r.hget(f"{P}:segments:model", "record") or b"{}")
    record["retired"] = ["cluster:7"]
    r.hset(f"{P}:segments:model", "record", orjson.dumps(record))
    info = {"name": "wholesale", "centroid": {}, "version": 5, "changed_at": 1_767_225_600.0}
    r.hset(f"{P}:segments", "cluster:7", orjson.dumps(info))
    r.sadd(f"{P}:segment:cluster:7", "w1", "w2", "w3")
    rows = {x.segment: x for x in read_rows(r, P)}
    assert rows["cluster:7"].status.startswith("retired at a re-fit")
    assert "3 users" in rows["cluster:7"].status and rows["cluster:2"].status == "live"
    record["refits"] = 4
    r.hset(f"{P}:segments:model", "record", orjson.dumps(record))
    assert ", re-fitted 4 times, " in quality_line(r, P)
    lines = render_table(list(rows.values()))
    assert lines[lines.index("not live:") + 1].startswith("cluster:7")
