"""ReplaySource: whole files through a flow, unique partition names, resume by record count."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import bytewax.operators as op
import pytest
from bytewax.dataflow import Dataflow
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.testing import TestingSink, run_main

from tailor.operators import lifecycle
from tailor.operators.payload_limits import PayloadLimits
from tailor.operators.progress import is_announcement
from tailor.operators.records import RawRecord
from tailor.operators.replay.adapters import read_payloads
from tailor.operators.replay.source import ReplaySource
from tests.settings_support import payload_limits

LIMITS = payload_limits()


@pytest.fixture(autouse=True)
def _no_stop_request() -> Iterator[None]:
    lifecycle.reset()
    yield
    lifecycle.reset()


@pytest.fixture
def otto_csv(data_dir: Path) -> Path:
    return data_dir / "otto-sample" / "train_events.csv"


def run_source(source: ReplaySource, recovery: RecoveryConfig | None = None) -> list[RawRecord]:
    """The records read, without the partitions' end announcements."""
    return [rec for rec in run_all(source, recovery) if not is_announcement(rec)]


def run_all(source: ReplaySource, recovery: RecoveryConfig | None = None) -> list[RawRecord]:
    out: list[RawRecord] = []
    flow = Dataflow("replay-test")
    op.output("out", op.input("inp", flow, source), TestingSink(out))
    run_main(flow, epoch_interval=timedelta(0), recovery_config=recovery)
    return out


def test_flow_replays_every_file_in_order(otto_csv: Path, tmp_path: Path) -> None:
    jsonl = tmp_path / "extra.jsonl"
    jsonl.write_bytes(b'{"a": 1}\nnot json\n')
    everything = run_all(ReplaySource([otto_csv, jsonl], batch_size=100, limits=LIMITS))
    out = [rec for rec in everything if not is_announcement(rec)]
    otto = [rec for rec in out if rec.origin == "file:train_events.csv"]
    assert [rec.payload for rec in otto] == list(read_payloads(otto_csv))
    assert [rec.offset for rec in otto] == [str(i) for i in range(862)]
    extra = [(rec.payload, rec.offset) for rec in out if rec.origin == "file:extra.jsonl"]
    assert extra == [(b'{"a": 1}', "0"), (b"not json", "1")]
    assert len(out) == 864
    # batches numbered per file (9 of otto's, 1 of extra's), then one end announcement each
    stamps = [(rec.origin, rec.stamp) for rec in everything if rec.stamp is not None]
    assert len(stamps) == len(everything)
    ends = [(origin, s.origin, s.seq) for origin, s in stamps if s.kind == "end"]
    assert sorted(ends) == [
        ("file:extra.jsonl", "extra.jsonl", 1),
        ("file:train_events.csv", "train_events.csv", 9),
    ]


def test_same_file_names_get_distinct_partitions(otto_csv: Path, tmp_path: Path) -> None:
    (tmp_path / "otto").mkdir()
    copy = tmp_path / "otto" / "train_events.csv"
    shutil.copy(otto_csv, copy)
    source = ReplaySource([otto_csv, copy], batch_size=500, limits=LIMITS)
    assert source.list_parts() == ["train_events.csv", "train_events.csv#2"]
    out = run_source(source)
    assert len(out) == 2 * 862
    assert {rec.origin for rec in out} == {"file:train_events.csv", "file:train_events.csv#2"}


def test_partition_resumes_after_the_records_already_emitted(otto_csv: Path) -> None:
    expected = list(read_payloads(otto_csv))
    source = ReplaySource([otto_csv], batch_size=300, limits=LIMITS)
    part = source.build_part("inp", "train_events.csv", (500, 2))
    first = part.next_batch()
    assert [rec.payload for rec in first] == expected[500:800]
    assert first[0].offset == "500"
    assert first[0].stamp is not None and first[0].stamp.seq == 2
    assert part.snapshot() == (800, 3)
    assert [rec.payload for rec in part.next_batch()] == expected[800:]
    assert part.snapshot() == (862, 4)
    assert [rec.stamp.kind for rec in part.next_batch() if rec.stamp] == ["end"]
    with pytest.raises(StopIteration):
        part.next_batch()
    part.close()


def test_recovered_run_does_not_replay_a_finished_file(otto_csv: Path, tmp_path: Path) -> None:
    init_db_dir(tmp_path, 1)
    recovery = RecoveryConfig(str(tmp_path))
    assert len(run_source(ReplaySource([otto_csv], limits=LIMITS), recovery)) == 862
    assert run_source(ReplaySource([otto_csv], limits=LIMITS), recovery) == []


def test_stop_request_ends_the_replay(otto_csv: Path) -> None:
    part = ReplaySource([otto_csv], batch_size=10, limits=LIMITS).build_part(
        "inp", "train_events.csv", None
    )
    assert len(part.next_batch()) == 10
    lifecycle.request_stop()
    with pytest.raises(StopIteration):
        part.next_batch()
    assert part.snapshot() == (10, 1)
    part.close()


def test_a_snapshot_from_before_batch_stamps_resumes_by_record_count(otto_csv: Path) -> None:
    part = ReplaySource([otto_csv], batch_size=10, limits=LIMITS).build_part(
        "inp", "train_events.csv", 850
    )
    batch = part.next_batch()
    assert [rec.offset for rec in batch] == [str(i) for i in range(850, 860)]
    assert part.snapshot() == (860, 1)
    part.close()


def test_batches_are_bounded_in_bytes_and_huge_lines_cut(tmp_path: Path) -> None:
    """A resume between two byte-bounded batches reads every line once; a huge line is kept as
    its prefix, length and SHA-1 from the moment it is read."""
    sizes = [3_000, 4_000, 4_000, 4_000, 50_000, 100, 9_000, 9_000, 200, 200]
    # JSON objects padded to each size: the file must look like JSON lines to be replayed
    lines = [
        f'{{"n":{n},"p":"'.encode().ljust(size - 2, b"x") + b'"}' for n, size in enumerate(sizes)
    ]
    path = tmp_path / "sizes.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    limits = PayloadLimits(max_payload_bytes=20_000, prefix_bytes=16, batch_max_bytes=10_000)
    source = ReplaySource([path], batch_size=4, limits=limits)
    part = source.build_part("inp", "sizes.jsonl", None)
    first = part.next_batch()
    assert [rec.offset for rec in first] == ["0", "1"]  # a third 4,000 would pass 10,000
    snapshot = part.snapshot()
    part.close()
    resumed = source.build_part("inp", "sizes.jsonl", snapshot)
    batches = [first]
    while not is_announcement((batch := resumed.next_batch())[0]):
        batches.append(batch)
    resumed.close()
    assert [[int(rec.offset) for rec in batch] for batch in batches] == [
        [0, 1],
        [2, 3],
        [4],  # larger than the budget: alone
        [5, 6],
        [7, 8, 9],
    ]
    records = [rec for batch in batches for rec in batch]
    assert records[4].payload == lines[4][:16]
    assert (records[4].size, records[4].sha1) == (50_000, hashlib.sha1(lines[4]).hexdigest())
    others = records[:4] + records[5:]
    assert [rec.payload for rec in others] == lines[:4] + lines[5:]
    assert all(rec.size is None and rec.sha1 is None for rec in others)
