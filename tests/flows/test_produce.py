"""`produce` against real Redis: routing per user, order per stream, a round trip to the worker."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import bytewax.operators as op
import orjson
import redis
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, run_main

from tailor.flows.config import shipped
from tailor.flows.produce import expected_total, produce, route
from tailor.flows.progress_bar import ProgressBar
from tailor.operators.records import Accepted, DeadLetter
from tailor.operators.redis.keys import stream_key
from tailor.operators.redis.routing import partition_for
from tailor.operators.redis.source import RedisStreamSource
from tailor.operators.replay.adapters import read_payloads
from tailor.operators.validate import validate
from tests.settings_support import payload_limits


def stored(r: redis.Redis, key: str) -> list[bytes]:
    entries: Any = r.xrange(key)
    return [fields[b"payload"] for _, fields in entries]


def test_stream_lengths_match_routing_and_order_is_kept(
    r: redis.Redis, redis_url: str, data_dir: Path
) -> None:
    path = data_dir / "otto-sample" / "train_events.csv"
    payloads = list(read_payloads(path))
    published = produce(redis_url, path, partitions=3, batch_size=100, progress=False)
    assert published == 862
    users = [orjson.loads(p)["user_id"] for p in payloads]
    counts = Counter(partition_for(u, 3) for u in users)
    assert {p: r.xlen(stream_key("tailor", p)) for p in range(3)} == dict(counts)
    for p in range(3):
        assert stored(r, stream_key("tailor", p)) == [
            pl for pl, u in zip(payloads, users, strict=True) if partition_for(u, 3) == p
        ]


def test_unroutable_payloads_go_to_partition_zero(
    r: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "events.jsonl"
    lines = [b"not json", b'{"user_id": true}', b"[1]", b'{"user_id": "u1"}', b'{"user_id": 1}']
    path.write_bytes(b"\n".join(lines) + b"\n")
    assert produce(redis_url, path, prefix="t", partitions=4, batch_size=2, progress=False) == 5
    zero = stored(r, stream_key("t", 0))
    assert zero[:3] == lines[:3]
    assert r.xlen(stream_key("t", partition_for("u1", 4))) >= 1
    assert sum(r.xlen(stream_key("t", p)) for p in range(4)) == 5


def test_route_matches_the_user_id_the_worker_sees() -> None:
    assert route(b'{"user_id": 12}', 8) == partition_for("12", 8)
    assert route(b'{"user_id": "alice"}', 8) == 7
    assert route(b'{"user_id": 1.5}', 8) == 0
    assert route(b"\xff", 8) == 0


def test_maxlen_trims_streams(r: redis.Redis, redis_url: str, data_dir: Path) -> None:
    path = data_dir / "otto-sample" / "train_events.csv"
    produce(redis_url, path, partitions=1, batch_size=50, progress=False, maxlen=100)
    assert 100 <= r.xlen(stream_key("tailor", 0)) < 862


def test_produced_events_are_all_accepted_by_the_worker(
    r: redis.Redis, redis_url: str, data_dir: Path
) -> None:
    path = data_dir / "otto-sample" / "train.jsonl"
    assert produce(redis_url, path, partitions=2, progress=False) == 862
    oks: list[Accepted] = []
    errs: list[DeadLetter] = []
    flow = Dataflow("produce-roundtrip")
    source = RedisStreamSource(
        redis_url, partitions=2, stop_when_drained=True, limits=payload_limits()
    )
    raw = op.input("inp", flow, source)
    out = validate("validate", raw, shipped().validation, now=lambda: 1_700_000_000.0)
    op.output("oks", out.oks, TestingSink(oks))
    op.output("errs", out.errs, TestingSink(errs))
    run_main(flow)
    assert errs == []
    assert Counter(a.event.type for a in oks) == {
        "product_view": 800,
        "add_to_cart": 52,
        "purchase": 10,
    }


def test_expected_total_counts_data_lines(data_dir: Path) -> None:
    assert expected_total(data_dir / "otto-sample" / "train_events.csv", "otto") == 862
    assert expected_total(data_dir / "cdnow" / "cdnow_master.csv", "cdnow") == 69_659
    assert expected_total(data_dir / "otto-sample" / "train.jsonl", "otto") is None


class FakeTty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_draws_on_a_terminal_only() -> None:
    tty = FakeTty()
    with ProgressBar("events", total=10, stream=tty, min_interval_s=0.0) as bar:
        bar.update(5)
        bar.update(10)
    text = tty.getvalue()
    assert text.startswith("\revents 5/10 50.0%")
    assert "\revents 10/10 100.0%" in text and text.endswith("\n")

    pipe = io.StringIO()
    with ProgressBar("events", total=10, stream=pipe, min_interval_s=0.0) as bar:
        bar.update(10)
    assert pipe.getvalue() == ""

    disabled = FakeTty()
    with ProgressBar("events", stream=disabled, enabled=False) as bar:
        bar.update(3)
    assert disabled.getvalue() == ""


def tailor(redis_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tailor.flows.cli", *args],
        env={**os.environ, "REDIS_URL": redis_url, "TAILOR_METRICS_PORT": "0"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_produce_refuses_a_file_its_adapter_cannot_read_and_publishes_nothing(
    r: redis.Redis, redis_url: str, data_dir: Path
) -> None:
    movies = data_dir / "movielens-latest-small" / "movies.csv"
    done = tailor(redis_url, "produce", str(movies), "--no-progress")
    assert done.returncode == 2
    assert done.stderr.startswith("tailor: movies.csv: the csv adapter reads canonical CSV")
    assert "got columns movieId,title,genres" in done.stderr
    assert done.stderr.count("\n") == 1 and done.stdout == ""
    assert r.dbsize() == 0
    done = tailor(redis_url, "produce", str(movies), "--adapter", "movielens", "--no-progress")
    assert done.returncode == 2
    expected = "the movielens adapter reads ratings.csv (userId,movieId,rating,timestamp)"
    assert expected in done.stderr
    assert r.dbsize() == 0


def test_replay_refuses_a_file_its_adapter_cannot_read(
    r: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    wrong = tmp_path / "events.jsonl"
    wrong.write_text("userId,movieId,rating,timestamp\n1,1,4.0,964982703\n")
    done = tailor(redis_url, "run", "--replay", str(wrong), "--until-drained")
    assert done.returncode == 2
    assert "tailor: events.jsonl: the jsonl adapter reads JSON lines" in done.stderr
    assert "Traceback" not in done.stderr and "panic" not in done.stderr
