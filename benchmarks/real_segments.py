"""Online segments and RFM tiers against batch ones, on real customers (issue 23's benchmark).

    flock /work/wt/measure.lock python -m benchmarks.real_segments [--data online-retail]
        [--compare "segments.params.n_clusters=6;segments.params.halflife=0.5" ...] [--json]
        [--plot FILE]

Replays a whole dataset (`online-retail`: UCI Online Retail, 4,338 customers; `cdnow`: 23,570
customers) through the real worker (`source.kind = "replay"`, the dataset's adapter, the
default configuration plus any `--setting`), on its own `redis-server`, then reads every
profile back from Redis as an application would and reports, on the users that have a cluster
segment:

- live cluster segments and the smallest one's share of users;
- the silhouette of the stored segments on the clusterer's own encoding of the stored
  features aged to the end (`tailor.flows.resegment.read_profiles`: each feature's transform,
  standardised over these users, devices one-hot),
  against batch k-means's (scikit-learn `KMeans(n_init=10)`, as many clusters as live
  segments) on the same matrix, and the adjusted Rand index between the two (and between
  batch k-means and itself with another seed: how firm the reference is);
- `tailor resegment`'s tables on the same Redis (`tailor.flows.resegment`);
- for customers (users who bought): the share whose stored RFM tier equals a batch RFM
  computed over all customers at the end of the replay (`tailor.state.segments.batch_rfm`, recency
  measured to the data's last event, as a marketer's batch job would).

The first row is the default configuration; each `--compare` adds a row for the defaults with
its settings over them (`section.key=value`, TOML values, `;` between settings,
`segments.params.<key>` for the clusterer's), replayed in turn in the same run.
"""

from __future__ import annotations

import argparse
import json
import time
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import redis
from bytewax.testing import run_main
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, silhouette_score

from benchmarks.throughput import start_server
from tailor.flows.config import Config, load_config
from tailor.flows.resegment import read_profiles, render, resegment
from tailor.flows.worker import build_redis_flow, model_params
from tailor.state.segments.batch_rfm import Values, batch_cuts, batch_tier

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
FILES = {
    "online-retail": DATA / "online-retail" / "online_retail.csv.gz",
    "cdnow": DATA / "cdnow" / "cdnow_master.csv",
}
PREFIX = "realseg"
DAY_S = 86400.0
SEED = 42
SILHOUETTE_SAMPLE = 5000


def configured(url: str, data: str, settings: list[str]) -> Config:
    """The default configuration replaying `data` into `url`, with `settings` over it."""
    config = load_config(env={}).with_value("redis", "url", url)
    for section, key, value in [
        ("redis", "prefix", PREFIX),
        ("metrics", "port", 0),
        ("recovery", "enabled", False),
        ("source", "kind", "replay"),
        ("source", "replay_paths", [str(FILES[data])]),
        ("source", "replay_adapter", data),
    ]:
        config = config.with_value(section, key, value)
    for setting in settings:
        name, _, raw = setting.partition("=")
        value = tomllib.loads(f"v = {raw}")["v"]
        parts = name.split(".")
        if parts[:2] == ["segments", "params"]:
            params = {**config.segments.params, parts[2]: value}
            config = config.with_value("segments", "params", params)
        else:
            config = config.with_value(parts[0], parts[1], value)
    return config


def profiles(client: redis.Redis) -> list[dict[str, Any]]:
    """Every stored profile, its JSON fields decoded."""
    out = []
    for key in sorted(client.scan_iter(match=f"{PREFIX}:user:*", count=1000)):
        raw = client.hgetall(key)
        out.append({k.decode(): orjson.loads(v) for k, v in raw.items()})
    return out  # in key order: k-means' seeding depends on the rows' order


def rfm_agreement(users: list[dict[str, Any]]) -> tuple[float, int]:
    """Share of customers whose stored tier is a batch RFM's at the end of the replay (a
    profile's recency is measured to its `aged_to` when it was aged, else its last event)."""
    end = max(float(u["last_event_ts"]) for u in users)
    customers: list[tuple[str, Values]] = []
    for u in users:
        f = u["features"]
        if f.get("purchases_total", 0) <= 0:
            continue
        as_of = float(u.get("aged_to") or u["last_event_ts"])
        last_purchase = as_of - float(f["recency_days"]) * DAY_S
        recency = min(365.0, (end - last_purchase) / DAY_S)
        customers.append(
            (u.get("rfm_segment") or "", (recency, f["purchases_total"], f["spend_total"]))
        )
    cuts = batch_cuts([values for _tier, values in customers])
    same = sum(1 for tier, values in customers if tier == batch_tier(values, cuts))
    return same / len(customers), len(customers)


def silhouette(matrix: np.ndarray, labels: list[Any]) -> float:
    """scikit-learn's silhouette, on a seeded sample of 5,000 users when there are more."""
    sample = min(len(labels), SILHOUETTE_SAMPLE)
    return float(silhouette_score(matrix, labels, sample_size=sample, random_state=SEED))


def measure(config: Config, client: redis.Redis, plot: Path | None = None) -> dict[str, Any]:
    """Replay, then score what Redis holds (`plot`: also draw `tailor resegment --plot`)."""
    client.flushall()
    started = time.perf_counter()
    run_main(build_redis_flow(config))
    seconds = time.perf_counter() - started
    users = profiles(client)
    segmented = [u for u in users if u.get("segment")]
    labels = [u["segment"] for u in segmented]
    live = sorted(set(labels))
    matrix = read_profiles(client, PREFIX, model_params(config)).matrix  # aged alike
    batch = KMeans(n_clusters=len(live), n_init=10, random_state=SEED).fit_predict(matrix)
    again = KMeans(n_clusters=len(live), n_init=10, random_state=SEED + 1).fit_predict(matrix)
    agree, customers = rfm_agreement(users)
    checked = resegment(client, PREFIX, model_params(config), plot=plot)
    return {
        "resegment": render(checked) if checked is not None else [],
        "seconds": seconds,
        "users": len(users),
        "segmented": len(segmented),
        "live_segments": len(live),
        "smallest_share": min(labels.count(s) for s in live) / len(segmented),
        "silhouette_online": silhouette(matrix, labels),
        "silhouette_batch": silhouette(matrix, list(batch)),
        "ari_batch": float(adjusted_rand_score(labels, batch)),
        "ari_batch_seeds": float(adjusted_rand_score(batch, again)),
        "customers": customers,
        "rfm_same_as_batch": agree,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", choices=sorted(FILES), default="online-retail")
    parser.add_argument(
        "--compare",
        action="append",
        default=[],
        help="another configuration: section.key=value settings separated by ';'",
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--plot", type=Path, help="draw the first row's resegment plot here")
    args = parser.parse_args()
    runs = [[], *([s for s in c.split(";") if s] for c in args.compare)]
    server, url = start_server()
    client = redis.Redis.from_url(url)
    rows = []
    try:
        for n, settings in enumerate(runs):
            plot = args.plot if n == 0 else None
            config = configured(url, args.data, settings)
            rows.append({"settings": settings, **measure(config, client, plot)})
    finally:
        server.terminate()
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    for r in rows:
        print(f"tailor resegment, {' '.join(r['settings']) or 'defaults'}:")
        print("\n".join(r["resegment"]), end="\n\n")
    print(f"{args.data}: {rows[0]['users']:,} users")
    print(
        "| settings | segmented | live | smallest | silhouette online / batch | ARI vs batch "
        "| batch vs batch (another seed) | RFM tier = batch (customers) | replay (s) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {' '.join(r['settings']) or 'defaults'} | {r['segmented']:,} "
            f"| {r['live_segments']} | {r['smallest_share']:.1%} | {r['silhouette_online']:.3f} / "
            f"{r['silhouette_batch']:.3f} | {r['ari_batch']:.3f} | {r['ari_batch_seeds']:.3f} "
            f"| {r['rfm_same_as_batch']:.1%} ({r['customers']:,}) | {r['seconds']:.0f} |"
        )


if __name__ == "__main__":
    main()
