"""`tailor resegment` on what a real worker wrote: batch methods over the live profiles,
compared with the live segments user by user, the result kept in Redis."""

from __future__ import annotations

import subprocess
from pathlib import Path

import orjson
import redis

from tailor.flows.config import load_config
from tailor.flows.resegment import KS, STABLE, aged_alike, resegment
from tailor.flows.worker import model_params
from tailor.operators.redis.keys import resegment_key, user_key
from tests.flows.cli_support import png_size, run_cli

PREFIX = "reseg"


def tailor(redis_url: str, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(redis_url, PREFIX, cwd, *args)


def test_resegment_compares_batch_clusters_with_the_live_segments(
    redis_url: str, r: redis.Redis, tmp_path: Path
) -> None:
    empty = tailor(redis_url, tmp_path, "resegment")
    assert empty.returncode == 1 and "fewer than two live segments" in empty.stderr

    demo = tailor(redis_url, tmp_path, "demo", "--users", "600")
    assert demo.returncode == 0, demo.stderr[-3000:]
    picture = tmp_path / "pictures" / "resegment.png"
    result = resegment(r, PREFIX, model_params(load_config(env={})), plot=picture)
    assert result is not None
    assert png_size(picture) == (1800, 630)  # three panels, 20 x 7 inches at 90 dpi
    assert picture.stat().st_size > 20_000

    segments = {}
    for n in range(600):
        stored = r.hget(user_key(PREFIX, f"user-{n:05d}"), "segment")
        if stored is not None and orjson.loads(stored):
            segments[f"user-{n:05d}"] = orjson.loads(stored)
    assert result.users == len(segments) > 500
    assert sum(sum(row.values()) for row in result.confusion.values()) == result.users
    assert (
        {key.split()[0] for key in result.confusion} == set(result.live) == set(segments.values())
    )

    assert set(result.agreement) == {
        "k-means",
        "k-means on PCA (90% variance)",
        "agglomerative (Ward)",
        "HDBSCAN",
    }
    assert result.agreement["k-means"]["clusters"] == len(result.live)
    # users and their live segments line up: the batch clusters find the same structure
    assert result.agreement["k-means"]["ari_live"] > 0.2
    assert all(-1.0 <= a["ari_live"] <= 1.0 for a in result.agreement.values())

    assert [s.k for s in result.k_scores] == list(KS)
    stable = [s for s in result.k_scores if s.stability >= STABLE] or result.k_scores
    assert result.suggested_k == max(stable, key=lambda s: s.silhouette).k

    kept = orjson.loads(r.get(resegment_key(PREFIX)) or b"{}")
    assert kept["suggested_k"] == result.suggested_k and kept["users"] == result.users
    printed = tailor(redis_url, tmp_path, "resegment", "--json")
    assert printed.returncode == 0, printed.stderr[-3000:]
    assert orjson.loads(printed.stdout)["agreement"] == kept["agreement"]


def test_stored_profiles_are_compared_as_they_stand_at_the_newest_moment() -> None:
    """The worker writes an aged profile only when its segments change, so stored profiles
    are as of different days; batch must see each user as of the same moment."""
    from tailor.state.profile.user import feature_horizons

    day = 86400.0
    fresh = {"features": {"recency_days": 0.0, "views_24h": 4.0}, "last_event_ts": 100 * day}
    lapsed = {
        "features": {"recency_days": 3.0, "views_24h": 0.0, "purchases_30d": 2.0},
        "last_event_ts": 50 * day,
        "aged_to": 60 * day,
    }
    aged = aged_alike([fresh, lapsed], feature_horizons())
    assert aged[0]["features"] == fresh["features"]
    assert aged[1]["features"] == {"recency_days": 43.0, "views_24h": 0.0, "purchases_30d": 0.0}
    assert aged[1]["aged_to"] == 60 * day  # the rest of the profile as stored
