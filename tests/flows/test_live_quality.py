"""Live recommendation quality through the real worker: a MovieLens slice replayed, the record
in `<prefix>:quality:recs` pinned to the figures the single models step gave before the
per-user outputs moved to their own step (`tailor.operators.user_outputs`,
`tailor.operators.live_quality`), re-pinned when the `isgd` component became FISM (its re-ranking
changed which items were served along the way, not the final lists: the Redis digests stayed), and
re-pinned when profiles began to age (`tailor.operators.aging`: the quality figures stayed, the
profiles and notices gained aged writes), and re-pinned when the digest came to cover the lists
published for users without history (`tailor.operators.fallbacks`: the digests of everything
else stayed as they were)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import orjson
import pytest
import redis

from tests.conftest import drain_worker, snapshot_state


@pytest.fixture
def movielens_users(data_dir: Path, tmp_path: Path) -> Path:
    """The first 150 users' ratings in time order (users interleave, as live), with the movies."""
    source = data_dir / "movielens-latest-small"
    lines = (source / "ratings.csv").read_text().splitlines()
    rows = [line for line in lines[1:] if int(line.split(",")[0]) <= 150]
    kept = [lines[0], *sorted(rows, key=lambda line: (int(line.split(",")[3]), line))]
    target = tmp_path / "movielens"
    target.mkdir()
    (target / "ratings.csv").write_text("\n".join(kept) + "\n")
    (target / "movies.csv").write_text((source / "movies.csv").read_text())
    return target / "ratings.csv"


def quality(r: redis.Redis, redis_url: str, path: Path, prefix: str, **settings: object) -> object:
    drain_worker(
        redis_url,
        prefix,
        1,
        source__kind="replay",
        source__replay_paths=[str(path)],
        source__replay_adapter="movielens",
        **settings,
    )
    stored = r.hgetall(f"{prefix}:quality:recs")
    return int(stored[b"version"]), orjson.loads(stored[b"record"]), digest(r, prefix)


def digest(r: redis.Redis, prefix: str) -> str:
    """Every profile, list (users' and published), membership and segment, and the notices,
    as one hash."""
    state = snapshot_state(r, prefix)
    flat = sorted(
        (key, sorted(value.items()) if isinstance(value, dict) else sorted(value))
        for key, value in state.items()
        if not isinstance(value, bytes | None)
    )
    notices = [fields for _id, fields in r.xrange(f"{prefix}:updates")]
    return hashlib.sha256(repr((flat, notices)).encode()).hexdigest()


def test_replayed_quality_equals_the_single_models_step(
    redis_url: str, r: redis.Redis, movielens_users: Path
) -> None:
    small = quality(r, redis_url, movielens_users, "q", recs__quality_window=500)
    whole = quality(r, redis_url, movielens_users, "w")
    assert small == (
        5802,
        {
            "all": {
                "model": "hybrid",
                "mrr": 0.001138888888888889,
                "n": 500,
                "ndcg": 0.00223298974489942,
                "recall": 0.006,
            }
        },
        "f29610464c12d4ad359ee6bf3f4ab7e55d29fd6a7a88ddcc1f21bed2778e304a",
    )
    assert whole == (
        5802,
        {
            "all": {
                "model": "hybrid",
                "mrr": 0.002787011047093777,
                "n": 5802,
                "ndcg": 0.004327480037864413,
                "recall": 0.009479489831092727,
            }
        },
        "ee709bdba2005ca6087446d6bf7a2077e62f9ced77e7df0fb122e0a7c2b90b6d",
    )
