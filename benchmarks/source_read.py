"""The cost of a bounded source read (`tailor.operators.redis.stream_read`) against a plain XREAD.

Both walk the same stream of `--reads` x `--entries` entries of ~`--bytes` bytes in batches of
`--entries` and turn each batch into `RawRecord`s: the baseline as the partition did with XREAD
COUNT n, the other by calling the real partition's `next_batch`. The two are interleaved in
one run so the ratio is fair on a busy machine. Prints the median per batch of each, and
their ratio.

    python benchmarks/source_read.py [--entries 1000] [--bytes 200] [--reads 200]

Starts its own redis-server (the machine's Redis 7) on a free port.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.hostile_payloads import start_server
from tailor.operators.records import RawRecord
from tailor.operators.redis.source import RedisStreamSource

KEY = "bench:events:0"


class XreadBaseline:
    """What the partition did before: XREAD COUNT n after the last id, the payload field."""

    def __init__(self, client: redis.Redis, count: int) -> None:
        self.client, self.count, self.last_id = client, count, "0-0"

    def next_batch(self) -> list[RawRecord]:
        reply: Any = self.client.xread({KEY: self.last_id}, count=self.count)
        read_at = time.time()
        batch = [
            RawRecord(fields.get(b"payload", b""), KEY, entry_id.decode(), read_at)
            for entry_id, fields in reply[0][1]
        ]
        self.last_id = batch[-1].offset
        return batch


def publish(client: redis.Redis, n: int, size: int) -> None:
    pad = "x" * max(0, size - 90)
    pipe = client.pipeline(transaction=False)
    for i in range(n):
        event = {"event_id": f"e{i}", "user_id": f"u{i % 97}", "type": "click", "ts": 1700000000}
        pipe.xadd(KEY, {"payload": orjson.dumps({**event, "p": pad})})
        if i % 10_000 == 9_999:
            pipe.execute()
    pipe.execute()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1000)
    parser.add_argument("--bytes", type=int, default=200)
    parser.add_argument("--reads", type=int, default=200)
    args = parser.parse_args()
    server, client = start_server()
    try:
        publish(client, args.entries * args.reads, args.bytes)
        url = f"redis://127.0.0.1:{client.connection_pool.connection_kwargs['port']}/0"
        source = RedisStreamSource(url, prefix="bench", partitions=1, batch_size=args.entries)
        readers = {
            "XREAD": XreadBaseline(client, args.entries),
            "script": source.build_part("in", KEY, None),
        }
        timings: dict[str, list[float]] = {name: [] for name in readers}
        for _ in range(args.reads):
            batches = []
            for name, reader in readers.items():
                started = time.perf_counter()
                batches.append(reader.next_batch())
                timings[name].append(time.perf_counter() - started)
            assert [r.payload for r in batches[0]] == [r.payload for r in batches[1]]
        xread, script = (statistics.median(timings[n]) * 1000 for n in ("XREAD", "script"))
        print(f"{args.reads} batches of {args.entries} entries of ~{args.bytes} B, median:")
        print(f"XREAD {xread:.2f} ms, script {script:.2f} ms, ratio {script / xread:.2f}")
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
