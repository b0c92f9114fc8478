"""The backlog and the bare I/O path of `benchmarks/scale.py`.

The backlog is MovieLens latest-small (as `tailor produce` reads it, `--adapter movielens`)
cycled: every cycle renames its users (`c<cycle>-<userId>`) and event ids and shifts its
times by the data's span plus a day, so cycle c+1 follows cycle c in event time and is a new
population of users. It is published with `tailor.flows.produce.produce` itself (routing, stream
keys, pipelines of 1,000), from a JSONL file written once.

The bare I/O path is the worker's shape without the worker: per partition XREAD COUNT 1000
from the last id, `orjson.loads` of every payload, a counter per user, then one pipelined
round trip with HSET (profile), SET (recs) and PUBLISH (notice) per user changed in that
batch. It is the ceiling the issue compares the worker against; each process takes a share
of the partitions, as the worker's processes do.
"""

from __future__ import annotations

import multiprocessing
import resource
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson
import redis

from benchmarks.procstat import peak_rss_mb
from tailor.flows.produce import produce
from tailor.operators.redis.keys import stream_key
from tailor.operators.redis.routing import readers
from tailor.operators.replay.adapters import read_payloads

DATA = Path("/work/shared/data/movielens-latest-small/ratings.csv")
DAY_S = 86400
#: The database that keeps a copy of the published streams (the worker uses database 0).
BACKUP_DB = 1
#: Output keys of the bare loop: a prefix of its own, never mistaken for the worker's.
BARE_PREFIX = "bare"


def movielens_events(path: Path = DATA) -> list[dict[str, Any]]:
    """The dataset as `tailor produce` sends it: time-ordered canonical events."""
    return [orjson.loads(payload) for payload in read_payloads(path, "movielens")]


def cycled(events: list[dict[str, Any]], cycles: int, limit: int | None) -> Iterator[bytes]:
    """`cycles` copies of `events`, each with new users and ids, later in event time; the
    first `limit` of them when given."""
    span = int(events[-1]["ts"]) - int(events[0]["ts"]) + DAY_S
    produced = 0
    for cycle in range(cycles):
        for event in events:
            if limit is not None and produced >= limit:
                return
            yield orjson.dumps(
                {
                    **event,
                    "event_id": f"c{cycle}-{event['event_id']}",
                    "user_id": f"c{cycle}-{event['user_id']}",
                    "ts": int(event["ts"]) + cycle * span,
                }
            )
            produced += 1


def newest_ts(payloads: Sequence[bytes]) -> float:
    return max(float(orjson.loads(p)["ts"]) for p in payloads[-1000:])


def publish_backlog(
    url: str, prefix: str, partitions: int, payloads: Sequence[bytes], workers: int = 1
) -> int:
    """Publish through `tailor produce`'s own code (from a JSONL file), routed for `workers`
    workers (`tailor.operators.redis.routing.partition_for`); returns the count."""
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "backlog.jsonl"
        with path.open("wb") as fh:
            for payload in payloads:
                fh.write(payload + b"\n")
        return produce(
            url, path, prefix, partitions, adapter="jsonl", progress=False, workers=workers
        )


class Backlog:
    """The published streams, kept in `BACKUP_DB` so every run starts from the same input.

    `restore` empties database 0 (every output, the dead letters, the streams' positions
    are in the readers, not in Redis) and copies the streams back: each run reads the same
    entries, with the same ids, from the start, into empty outputs.
    """

    def __init__(self, url: str, prefix: str, partitions: int) -> None:
        """`url` names database 0 (`redis://host:port/0`)."""
        self.keys = [stream_key(prefix, p) for p in range(partitions)]
        self.main = redis.Redis.from_url(url)
        # a database in the URL wins over a `db` argument: name the backup's in the URL
        self.backup = redis.Redis.from_url(f"{url.rsplit('/', 1)[0]}/{BACKUP_DB}")

    def save(self) -> int:
        self.backup.flushdb()
        for key in self.keys:
            self.main.copy(key, key, destination_db=str(BACKUP_DB), replace=True)
        return self.size()

    def restore(self) -> int:
        self.main.flushdb()
        for key in self.keys:
            self.backup.copy(key, key, destination_db="0", replace=True)
        return self.size()

    def clear(self) -> None:
        """Database 0 empty: streams too (for the start-up run)."""
        self.main.flushdb()

    def size(self) -> int:
        return sum(int(self.main.xlen(key)) for key in self.keys)


def _bare_write(pipe: Any, user: str, event: dict[str, Any], count: int) -> None:
    """One user's output: profile fields, a recs string and a notice, as JSON like the sink."""
    version = orjson.dumps(count)
    features = orjson.dumps({"events": count, "last_item": event.get("item_id")})
    pipe.hset(
        f"{BARE_PREFIX}:user:{user}",
        mapping={"version": version, "updated_at": orjson.dumps(event["ts"]), "features": features},
    )
    items = [{"item_id": event.get("item_id"), "score": 1.0, "source": "bare"}]
    pipe.set(f"{BARE_PREFIX}:recs:{user}", orjson.dumps({"version": count, "items": items}))
    notice = {"user_id": user, "version": count, "changed": ["profile", "recs"]}
    pipe.publish(f"{BARE_PREFIX}:updates", orjson.dumps(notice))


def bare_drain(url: str, keys: Sequence[str], batch_size: int = 1000) -> dict[str, float]:
    """Drain `keys` round-robin, one XREAD per partition per round, until each reads empty."""
    client = redis.Redis.from_url(url)
    last: dict[str, Any] = dict.fromkeys(keys, "0-0")
    counts: dict[str, int] = {}
    live, events = list(keys), 0
    started = time.time()
    while live:
        for key in list(live):
            reply: Any = client.xread({key: last[key]}, count=batch_size)
            if not reply:
                live.remove(key)
                continue
            entries = reply[0][1]
            changed: dict[str, dict[str, Any]] = {}
            for _entry_id, fields in entries:
                event = orjson.loads(fields[b"payload"])
                user = str(event["user_id"])
                counts[user] = counts.get(user, 0) + 1
                changed[user] = event
            last[key] = entries[-1][0]
            events += len(entries)
            pipe = client.pipeline(transaction=False)
            for user, event in changed.items():
                _bare_write(pipe, user, event, counts[user])
            pipe.execute()
    client.close()
    return {
        "events": events,
        "started": started,
        "ended": time.time(),
        "peak_rss_mb": peak_rss_mb(),
        "cpu_s": sum(resource.getrusage(resource.RUSAGE_SELF)[:2]),
    }


def _bare_child(url: str, keys: list[str], go: Any, results: Any) -> None:
    results.put("ready")
    go.wait()
    results.put(bare_drain(url, keys))


def shares(keys: Sequence[str], processes: int) -> list[list[str]]:
    """Partition keys dealt to processes as Bytewax deals them to workers
    (`tailor.operators.redis.routing.readers`: in turn, in name order).

    >>> shares(["s:0", "s:1", "s:2", "s:3"], 2)
    [['s:0', 's:2'], ['s:1', 's:3']]
    """
    reader = readers(len(keys), processes)
    return [[key for key, w in zip(keys, reader, strict=True) if w == i] for i in range(processes)]


def bare_run(url: str, keys: Sequence[str], processes: int) -> dict[str, Any]:
    """The bare path in `processes` fresh processes (spawned: their RSS is their own), timed
    from a common start signal to the last one's end."""
    context = multiprocessing.get_context("spawn")
    go, results = context.Event(), context.Queue()
    children = [
        context.Process(target=_bare_child, args=(url, share, go, results))
        for share in shares(keys, processes)
    ]
    for child in children:
        child.start()
    for _child in children:  # every interpreter has imported before the clock starts
        results.get()
    go.set()
    parts = [results.get() for _ in children]
    for child in children:
        child.join()
    seconds = max(p["ended"] for p in parts) - min(p["started"] for p in parts)
    events = sum(p["events"] for p in parts)
    return {
        "processes": processes,
        "events": events,
        "seconds": seconds,
        "events_per_s": events / seconds,
        "peak_rss_mb": [round(p["peak_rss_mb"]) for p in parts],
        "cpu_s": [round(p["cpu_s"], 2) for p in parts],
    }
