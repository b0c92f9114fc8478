"""`tailor block`: a blocked item leaves every stored and later recommendation list."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import orjson
import pytest
import redis

from tailor.flows.block import block, without_item
from tailor.flows.cli import main
from tailor.flows.produce import produce
from tailor.flows.sample import write_jsonl
from tailor.operators.records import Block, RawRecord
from tailor.operators.redis.control import parse_command
from tailor.operators.redis.keys import blocklist_key
from tests.conftest import drain_worker

PARTITIONS = 2


def recommended(r: redis.Redis, prefix: str) -> Counter[str]:
    """How many users' stored lists hold each item."""
    counts: Counter[str] = Counter()
    for key in r.scan_iter(match=f"{prefix}:recs:*", count=1000):
        counts.update(i["item_id"] for i in orjson.loads(r.get(key) or b"{}")["items"])
    return counts


def run(redis_url: str, sample: Path, prefix: str) -> None:
    produce(
        redis_url, sample, prefix=prefix, partitions=PARTITIONS, adapter="jsonl", progress=False
    )
    drain_worker(redis_url, prefix, PARTITIONS, recovery__enabled=False)


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    path = tmp_path / "sample.jsonl"
    write_jsonl(path, users=150, seed=5)
    return path


def test_blocking_purges_stored_lists_and_keeps_later_ones_clean(
    redis_url: str, r: redis.Redis, sample: Path, tmp_path: Path
) -> None:
    run(redis_url, sample, "open")
    favourite, shown = recommended(r, "open").most_common(1)[0]
    assert shown > 10  # many users were recommended it
    config = tmp_path / "open.toml"
    config.write_text('[redis]\nprefix = "open"\n')
    os.environ["REDIS_URL"] = redis_url
    try:
        assert main(["block", favourite, "--config", str(config)]) == 0
    finally:
        del os.environ["REDIS_URL"]
    assert r.smembers(blocklist_key("open")) == {favourite.encode()}
    assert favourite not in recommended(r, "open")  # the stored lists were rewritten
    # a fresh worker on new traffic: whenever it hears of the block, nothing it writes holds it
    block(r, "shut", favourite)
    run(redis_url, sample, "shut")
    after = recommended(r, "shut")
    assert favourite not in after and sum(after.values()) > 0
    block(r, "shut", favourite, blocked=False)
    assert r.smembers(blocklist_key("shut")) == set()


def test_a_rewritten_list_keeps_the_sinks_byte_layout() -> None:
    stored = b'{"version":7,"items":[{"item_id":"a","reason":"","score":1.0,"source":"cooc"},'
    stored += b'{"item_id":"b","reason":"","score":0.5,"source":"cooc"}]}'
    assert without_item(stored, "a") == (
        b'{"version":7,"items":[{"item_id":"b","reason":"","score":0.5,"source":"cooc"}]}'
    )
    assert without_item(stored, "z") is None


def test_item_commands_parse() -> None:
    def command(payload: dict[str, object]) -> object:
        return parse_command(RawRecord(orjson.dumps(payload), "c", "1-0", 0.0))

    assert command({"op": "block", "item_id": "i1"}) == Block("i1", True)
    assert command({"op": "unblock", "item_id": "i1"}) == Block("i1", False)
    assert command({"op": "block", "item_id": ""}) is None
    assert command({"op": "block"}) is None


def test_a_command_the_source_cut_is_ignored_even_if_its_prefix_parses() -> None:
    prefix = orjson.dumps({"op": "block", "item_id": "i1"})
    cut = RawRecord(prefix, "c", "1-0", 0.0, None, 3_000_000, "00" * 20)
    assert parse_command(cut) is None
