"""The demo's segments as a reader sees them: names a person can tell apart, no live segment
without members, and every profile naming its segment as the segment table does."""

from __future__ import annotations

from pathlib import Path

import orjson
import redis

from tailor.flows.segments_table import read_history, read_rows
from tailor.operators.redis.keys import segments_key, user_key
from tailor.state.segments.names import SEPARATOR
from tests.flows.cli_support import png_size, run_cli

PREFIX = "seg-demo"


def test_the_demo_sample_gives_segments_a_reader_can_tell_apart(
    redis_url: str, r: redis.Redis, tmp_path: Path
) -> None:
    done = run_cli(redis_url, PREFIX, tmp_path, "demo")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "users with a profile: 1500" in done.stdout

    rows = read_rows(r, PREFIX)
    live = [row for row in rows if row.segment.startswith("cluster:") and row.status == "live"]
    assert len(live) >= 3, rows
    assert all(row.size > 0 for row in live)
    words = [frozenset(row.name.split(SEPARATOR)) for row in live]
    assert len(set(words)) == len(words), [row.name for row in live]
    # the printed table lists no cluster of size 0 among the live ones
    table = done.stdout.split("segments:", 1)[1].split("where to look:")[0].splitlines()[1:]
    header = next(line for line in table if line.split()[:3] == ["segment", "name", "size"])
    size_end = header.index("size") + len("size")  # sizes are right-aligned under it
    head = table.index(header)
    tail = table.index("  not live:") if "  not live:" in table else None
    live_lines = [line for line in table[head + 1 : tail] if line.strip().startswith("cluster:")]
    sizes = [int(line[:size_end].split()[-1]) for line in live_lines]
    assert len(sizes) == len(live) and all(sizes), table

    names = {
        key.decode(): orjson.loads(value)["name"]
        for key, value in r.hgetall(segments_key(PREFIX)).items()
    }
    stale = []
    for n in range(1500):
        user = f"user-{n:05d}"
        segment, name = r.hmget(user_key(PREFIX, user), "segment", "segment_name")
        assert segment is not None and name is not None, user
        if orjson.loads(segment) and names.get(orjson.loads(segment)) != orjson.loads(name):
            stale.append(user)
    assert not stale, f"{len(stale)} profiles name their segment otherwise, e.g. {stale[:3]}"

    # the sizes at each published model, and the picture of them
    history = read_history(r, PREFIX)
    assert len(history) >= 3 and [at for at, _ in history] == sorted(at for at, _ in history)
    last = history[-1][1]
    assert all(0 <= last.get(row.segment, 0) <= 1500 for row in live)
    picture = tmp_path / "segments.png"
    plotted = run_cli(redis_url, PREFIX, tmp_path, "segments", "--plot", str(picture))
    assert plotted.returncode == 0, plotted.stderr[-3000:]
    assert png_size(picture) == (1620, 585)  # two panels, 18 x 6.5 inches at 90 dpi
