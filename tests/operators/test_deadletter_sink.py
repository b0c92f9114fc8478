"""DeadLetterSink against a real Redis: raw bytes survive, each input is dead-lettered once
however often it is replayed, the stream and its index are capped together, retries count."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import cast

import bytewax.operators as op
import pytest
import redis
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSource, run_main
from prometheus_client import REGISTRY

from tailor.operators.records import DeadLetter
from tailor.operators.redis.deadletters import DeadLetterSink, _DeadLetterPartition, identity
from tailor.operators.redis.erasure import delete_mentions
from tailor.operators.redis.keys import deadletter_index, deadletter_stream
from tests.conftest import RedisServer, free_port

PREFIX = "t"

HOSTILE = [
    b"\xff\xfe\x00garbage",  # not UTF-8, with a NUL
    b"",
    b'{"event_id": "e", "user_id": "u\\u0000x"}',
    "café".encode("latin-1") + b"\x80\x81",  # Latin-1, invalid as UTF-8
    bytes(range(256)),
]


def no_sleep(_seconds: float) -> None:
    """Retries in tests never wait."""


def letter(payload: bytes, n: int, reason: str = "not_utf8") -> DeadLetter:
    return DeadLetter(reason, f"detail {n}", payload, "t:events:0", f"1700000000000-{n}")


@pytest.fixture
def sink(redis_url: str) -> Iterator[_DeadLetterPartition]:
    part = DeadLetterSink(redis_url, prefix=PREFIX, sleep=no_sleep).build("dead", 0, 1)
    yield part
    part.close()


def entries(r: redis.Redis) -> list[dict[bytes, bytes]]:
    stored = cast(list[tuple[bytes, dict[bytes, bytes]]], r.xrange(deadletter_stream(PREFIX)))
    return [fields for _, fields in stored]


def test_raw_payload_bytes_are_kept_exactly(sink: _DeadLetterPartition, r: redis.Redis) -> None:
    sink.write_batch([letter(p, n) for n, p in enumerate(HOSTILE)])
    stored = entries(r)
    assert [e[b"payload"] for e in stored] == HOSTILE
    assert stored[0] == {
        b"reason": b"not_utf8",
        b"detail": b"detail 0",
        b"payload": HOSTILE[0],
        b"origin": b"t:events:0",
        b"offset": b"1700000000000-0",
    }


def test_a_cut_payload_is_written_with_its_size_and_sha1(
    sink: _DeadLetterPartition, r: redis.Redis
) -> None:
    cut = DeadLetter(
        "too_large", "70000 bytes", b"{pre", "t:events:0", "1-0", None, 70_000, "9f" * 20
    )
    sink.write_batch([cut, letter(b"whole", 1)])
    first, second = entries(r)
    assert (first[b"payload"], first[b"size"], first[b"sha1"]) == (b"{pre", b"70000", b"9f" * 20)
    assert b"size" not in second and b"sha1" not in second


def test_real_csv_lines_round_trip(
    data_dir: Path, sink: _DeadLetterPartition, r: redis.Redis
) -> None:
    """Lines of a real dataset, as a replay source would refuse them, come back unchanged."""
    with (data_dir / "movielens-latest-small" / "movies.csv").open("rb") as handle:
        lines = list(islice(handle, 300))
    sink.write_batch([letter(line, n, "malformed_json") for n, line in enumerate(lines)])
    assert [e[b"payload"] for e in entries(r)] == lines


def test_stream_is_capped(redis_url: str, r: redis.Redis) -> None:
    part = DeadLetterSink(redis_url, prefix=PREFIX, maxlen=20, sleep=no_sleep).build("d", 0, 1)
    for start in range(0, 500, 100):
        part.write_batch([letter(b"x", n) for n in range(start, start + 100)])
    part.close()
    length = r.xlen(deadletter_stream(PREFIX))
    assert 20 <= length <= 120  # "~" trims whole stream nodes (100 entries by default)
    assert entries(r)[-1][b"offset"] == b"1700000000000-499"
    assert index_matches_stream(r)


def index_matches_stream(r: redis.Redis) -> bool:
    """Every letter in the stream is indexed; any other index entry shares the first
    entry's millisecond (trimmed with it, dropped by a later trim)."""
    stored = cast(list[tuple[bytes, dict[bytes, bytes]]], r.xrange(deadletter_stream(PREFIX)))
    kept = {
        identity(DeadLetter("", "", b"", f[b"origin"].decode(), f[b"offset"].decode()))
        for _, f in stored
    }
    index = dict(
        cast(list[tuple[bytes, float]], r.zrange(deadletter_index(PREFIX), 0, -1, withscores=True))
    )
    first_ms = int(stored[0][0].split(b"-")[0]) if stored else None
    return kept <= index.keys() and all(index[i] == first_ms for i in index.keys() - kept)


def test_a_replayed_letter_is_written_once(sink: _DeadLetterPartition, r: redis.Redis) -> None:
    """Recovery replays what a killed worker refused after its last snapshot, in other
    batches, and validation and lateness letters arrive in no common order."""
    letters = [letter(p, n) for n, p in enumerate(HOSTILE)]
    repeated = REGISTRY.get_sample_value("tailor_dead_letters_repeated_total") or 0.0
    sink.write_batch(letters[:3])
    sink.write_batch(letters[1:])  # the replay, overlapping and cut otherwise
    sink.write_batch(letters[::-1] + letters)
    assert [e[b"payload"] for e in entries(r)] == HOSTILE
    skipped = (REGISTRY.get_sample_value("tailor_dead_letters_repeated_total") or 0.0) - repeated
    assert skipped == 2 + 2 * len(HOSTILE)
    assert r.zcard(deadletter_index(PREFIX)) == len(HOSTILE)
    # the same offset in another stream, or a late event of the same entry id: other inputs
    other = DeadLetter("late", "x", b"{}", "t:events:1", "1700000000000-0")
    sink.write_batch([other, dataclasses.replace(other, origin="t:events:0", reason="late")])
    assert len(entries(r)) == len(HOSTILE) + 1


def test_an_emptied_stream_empties_its_index(sink: _DeadLetterPartition, r: redis.Redis) -> None:
    sink.write_batch([letter(b"a", 0), letter(b'{"user_id": "gone"}', 1)])
    assert delete_mentions(r, deadletter_stream(PREFIX), b"payload", ["gone"]) == 1
    assert r.zcard(deadletter_index(PREFIX)) == 2  # the erased letter's entry waits for a trim
    r.delete(deadletter_stream(PREFIX))  # an operator clears the stream
    sink.write_batch([letter(b"b", 2)])
    assert r.zcard(deadletter_index(PREFIX)) == 1 and len(entries(r)) == 1


def test_fields_are_written_generically(sink: _DeadLetterPartition, r: redis.Redis) -> None:
    """Every `DeadLetter` field but the stamp is a stream field, named as in the record, and
    only when set (`size` and `sha1` belong to cut payloads): a field added to the record
    reaches the stream without touching the sink."""
    names = {f.name for f in dataclasses.fields(DeadLetter)} - {"stamp"}
    cut = dataclasses.replace(letter(b"p", 1, "too_large"), size=70_000, sha1="ab" * 20)
    sink.write_batch([letter(b"p", 0), cut])
    plain, whole = entries(r)
    assert {k.decode() for k in plain} == names - {"size", "sha1"}
    assert {k.decode() for k in whole} == names
    assert (whole[b"size"], whole[b"sha1"]) == (b"70000", b"ab" * 20)


def test_through_a_bytewax_flow(redis_url: str, r: redis.Redis) -> None:
    letters = [letter(p, n) for n, p in enumerate(HOSTILE)]
    flow = Dataflow("dead_letter_test")
    stream = op.input("in", flow, TestingSource(letters, batch_size=2))
    op.output("dead", stream, DeadLetterSink(redis_url, prefix=PREFIX, sleep=no_sleep))
    run_main(flow)
    assert [e[b"payload"] for e in entries(r)] == HOSTILE


def test_retries_are_counted_and_exhaustion_raises() -> None:
    waits: list[float] = []
    url = f"redis://127.0.0.1:{free_port()}/0"
    part = DeadLetterSink(url, prefix=PREFIX, max_attempts=3, sleep=waits.append).build("d", 0, 1)
    labels = {"operation": "deadletter", "kind": "ConnectionError"}
    before = REGISTRY.get_sample_value("tailor_redis_errors_total", labels) or 0.0
    with pytest.raises(redis.ConnectionError):
        part.write_batch([letter(b"x", 0)])
    assert (REGISTRY.get_sample_value("tailor_redis_errors_total", labels) or 0.0) - before == 3
    assert len(waits) == 2


def test_transient_failure_then_success_delivers() -> None:
    server = RedisServer()
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        server.start()

    try:
        part = DeadLetterSink(server.url, prefix=PREFIX, sleep=sleep).build("d", 0, 1)
        part.write_batch([letter(HOSTILE[0], 0)])
        client = redis.Redis.from_url(server.url)
        stored = entries(client)
        client.close()
        part.close()
    finally:
        server.stop()
        shutil.rmtree(server.dir, ignore_errors=True)
    assert len(waits) == 1
    assert [f[b"payload"] for f in stored] == [HOSTILE[0]]


def test_retries_for_ever_by_default() -> None:
    server = RedisServer()
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 12:
            server.start()

    try:
        sink = DeadLetterSink(server.url, prefix=PREFIX, max_attempts=0, sleep=sleep)
        part = sink.build("d", 0, 1)
        part.write_batch([letter(HOSTILE[4], 0)])
        client = redis.Redis.from_url(server.url)
        stored = entries(client)
        client.close()
        part.close()
    finally:
        server.stop()
        shutil.rmtree(server.dir, ignore_errors=True)
    assert len(waits) == 12
    assert [f[b"payload"] for f in stored] == [HOSTILE[4]]
    assert REGISTRY.get_sample_value("tailor_redis_up", {"operation": "deadletter"}) == 1.0
