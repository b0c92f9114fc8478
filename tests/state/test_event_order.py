"""EventTimeOrder: the same items in the same order, however the records arrive."""

from __future__ import annotations

import pickle
import random

from tailor.state.segments.event_order import END, IDLE, EventTimeOrder, Stamp

Record = tuple[Stamp, float | None, list[tuple[tuple[str, int], str]]]


def partitioned_stream(seed: int, partitions: int = 3, batches: int = 12) -> list[Record]:
    """Stamped records of `partitions` partitions, each record an item except a few refused
    ones (no item, no event time), events a little out of order inside a partition."""
    rng = random.Random(seed)
    records: list[Record] = []
    for p in range(partitions):
        origin, ts, seq = f"p{p}", 1000.0 * p, 0
        for _ in range(batches):
            size = rng.randint(1, 6)
            stamp = Stamp(origin, seq, size)
            for n in range(size):
                ts += rng.uniform(0, 50)
                if rng.random() < 0.1:
                    records.append((stamp, None, []))  # refused upstream: progress only
                    continue
                jitter = rng.uniform(-20, 0)
                name = f"{origin}.{seq}.{n}"
                records.append((stamp, ts + jitter, [((name, seq), name)]))
            seq += 1
        records.append((Stamp(origin, seq, 1, END), None, []))
    return records


def replay(records: list[Record], origins: tuple[str, ...], reorder_s: float) -> list[str]:
    order = EventTimeOrder[str](origins, reorder_s)
    out: list[str] = []
    for stamp, ts, items in records:
        order.add(stamp, ts, items)
        out += order.release()
    assert order.held == 0  # every partition ended: all released without a flush
    assert order.late == 0
    return out


def test_any_arrival_order_releases_the_same_sequence() -> None:
    records = partitioned_stream(seed=1)
    origins = ("p0", "p1", "p2")
    in_order = replay(records, origins, reorder_s=20.0)
    assert len(in_order) == sum(len(items) for _, _, items in records)
    for seed in range(20):
        shuffled = list(records)
        random.Random(seed).shuffle(shuffled)  # any interleaving, even within a batch
        assert replay(shuffled, origins, reorder_s=20.0) == in_order


def reference_order(records: list[Record], reorder_s: float) -> list[str]:
    """By hand: per partition, batch by batch, each item at max(ts, watermark before its
    batch), the watermark then the batch's newest event time minus `reorder_s`; all sorted."""
    placed: list[tuple[float, tuple[str, int]]] = []
    batches: dict[tuple[str, int], list[tuple[float | None, list[tuple[tuple[str, int], str]]]]]
    batches = {}
    for stamp, ts, items in records:
        batches.setdefault((stamp.origin, stamp.seq), []).append((ts, items))
    for origin in sorted({o for o, _ in batches}):
        watermark = float("-inf")
        for seq in sorted(s for o, s in batches if o == origin):
            batch = batches[(origin, seq)]
            for ts, items in batch:
                placed += [(max(ts, watermark), key) for key, _ in items if ts is not None]
            times = [ts for ts, _ in batch if ts is not None]
            if times:
                watermark = max(watermark, max(times) - reorder_s)
    return [key[0] for _, key in sorted(placed)]


def test_release_follows_effective_time_and_is_incremental() -> None:
    records = partitioned_stream(seed=2)
    order = EventTimeOrder[str](("p0", "p1", "p2"), 20.0)
    released: list[list[str]] = []
    for stamp, ts, items in records:
        order.add(stamp, ts, items)
        released.append(order.release())
    assert [name for chunk in released for name in chunk] == reference_order(records, 20.0)
    # items come out while partitions are still running, not only once they have ended
    first_end = next(i for i, (stamp, _, _) in enumerate(records) if stamp.kind == END)
    assert sum(len(chunk) for chunk in released[:first_end]) == 0  # p1, p2 not heard yet
    last_end = max(i for i, (stamp, _, _) in enumerate(records) if stamp.kind == END)
    assert sum(len(chunk) for chunk in released[:last_end]) > 0


def test_nothing_is_final_until_every_expected_partition_has_spoken() -> None:
    order = EventTimeOrder[str](("p0", "p1"))
    order.add(Stamp("p0", 0, 1), 10.0, [(("a", 1), "a")])
    order.add(Stamp("p0", 1, 1), 20.0, [(("b", 1), "b")])
    assert order.release() == []  # p1 might still bring something at ts 0
    order.add(Stamp("p1", 0, 1), 15.0, [(("c", 1), "c")])
    assert order.release() == ["a"]  # strictly before min(20, 15)


def test_an_incomplete_batch_holds_its_partition_back() -> None:
    order = EventTimeOrder[str](("p0",))
    order.add(Stamp("p0", 1, 1), 50.0, [(("late-batch", 1), "x")])  # batch 1 before batch 0
    order.add(Stamp("p0", 0, 2), 10.0, [(("a", 1), "a")])
    assert order.release() == []  # batch 0 has one record still on its way
    order.add(Stamp("p0", 0, 2), None, [])  # ... refused upstream: progress only
    assert order.release() == ["a"]  # batches 0 and 1 taken; watermark 50
    order.add(Stamp("p0", 2, 1, END), None, [])
    assert order.release() == ["x"]


def test_items_behind_their_partition_watermark_are_placed_at_it() -> None:
    order = EventTimeOrder[str](("p0", "p1"))
    order.add(Stamp("p0", 0, 1), 100.0, [(("a", 1), "a")])
    order.add(Stamp("p0", 1, 1), 40.0, [(("b", 1), "b")])  # 60 s behind, no reorder_s
    order.add(Stamp("p1", 0, 1), 70.0, [(("c", 1), "c")])
    order.add(Stamp("p1", 1, 1, END), None, [])
    order.add(Stamp("p0", 2, 1, END), None, [])
    # "b" sorts at 100 (p0's watermark when its batch came), after "c" at 70, tie after "a"
    assert order.release() == ["c", "a", "b"]


def test_an_idle_partition_stops_holding_the_others_back() -> None:
    order = EventTimeOrder[str](("p0", "p1"))
    order.add(Stamp("p0", 0, 1), 10.0, [(("a", 1), "a")])
    order.add(Stamp("p0", 1, 1), 30.0, [(("b", 1), "b")])
    assert order.release() == []
    order.add(Stamp("p1", 0, 1, IDLE), None, [])
    assert order.release() == ["a"]  # p0's own watermark (30) now rules
    order.add(Stamp("p1", 1, 1), 5.0, [(("c", 1), "c")])  # p1 wakes up behind: late
    order.add(Stamp("p0", 2, 1, END), None, [])
    order.add(Stamp("p1", 2, 1, END), None, [])
    assert order.release() == ["c", "b"] and order.late == 1  # placed at the frontier (10)


def test_a_redelivered_batch_is_counted_once() -> None:
    order = EventTimeOrder[str](("p0",))
    order.add(Stamp("p0", 0, 1), 10.0, [(("a", 1), "a")])
    order.add(Stamp("p0", 0, 1), 10.0, [(("a", 1), "a-again")])  # batch 0 was taken already
    order.add(Stamp("p0", 1, 1, END), None, [])
    assert order.release() == ["a"]


def test_unstamped_input_is_a_plain_reorder_buffer() -> None:
    order = EventTimeOrder[str](reorder_s=10.0)
    for ts, name in [(5.0, "a"), (1.0, "b"), (20.0, "c")]:
        order.add(None, ts, [((name, 1), name)])
    assert order.release() == ["b", "a"]  # up to and including 20 - 10
    order.add(None, 30.0, [(("d", 1), "d")])
    assert order.release() == ["c"]
    assert order.flush() == ["d"]


def test_discard_forgets_held_items_but_keeps_counting_their_records() -> None:
    order = EventTimeOrder[str](("p0",))
    order.add(Stamp("p0", 0, 2), 10.0, [(("alice", 1), "alice")])
    order.discard(lambda name: name == "alice")
    order.add(Stamp("p0", 0, 2), 12.0, [(("bob", 1), "bob")])
    order.add(Stamp("p0", 1, 1, END), None, [])
    assert order.release() == ["bob"]


def test_flush_takes_even_incomplete_batches_in_sequence() -> None:
    order = EventTimeOrder[str](("p0", "p1"))
    order.add(Stamp("p0", 0, 3), 10.0, [(("a", 1), "a")])  # 2 records never came
    order.add(Stamp("p0", 1, 1), 5.0, [(("b", 1), "b")])
    assert order.release() == []
    assert order.flush() == ["a", "b"]  # b placed at p0's watermark after batch 0 (10)


def test_pickles_mid_stream() -> None:
    records = partitioned_stream(seed=3)
    order = EventTimeOrder[str](("p0", "p1", "p2"), 20.0)
    out: list[str] = []
    for stamp, ts, items in records[: len(records) // 2]:
        order.add(stamp, ts, items)
        out += order.release()
    order = pickle.loads(pickle.dumps(order))
    for stamp, ts, items in records[len(records) // 2 :]:
        order.add(stamp, ts, items)
        out += order.release()
    assert out == replay(records, ("p0", "p1", "p2"), 20.0)


def test_items_taken_from_one_order_are_released_by_another_in_their_place() -> None:
    """Two orders over the same records, one also holding its own items (a replica's settle
    points); halfway those are taken out and put into the other, which must then release
    everything exactly where one order holding all of it would (`tailor.flows.rescale`)."""
    records = partitioned_stream(seed=4)
    origins = ("p0", "p1", "p2")
    everything = replay(records, origins, reorder_s=20.0)

    def own(name: str) -> bool:
        return name.endswith(("1", "4"))  # some items of most batches: the "own" ones

    holder = EventTimeOrder[str](origins, 20.0)
    other = EventTimeOrder[str](origins, 20.0)
    by_holder: list[str] = []
    by_other: list[str] = []
    half = len(records) // 2
    for stamp, ts, items in records[:half]:
        holder.add(stamp, ts, items)
        other.add(stamp, ts, [(key, name) for key, name in items if not own(name)])
        by_holder += [name for name in holder.release() if own(name)]
        by_other += other.release()
    moved = holder.take(own)
    assert moved and all(own(value) for *_, value in moved)
    assert not any(own(value) for *_, value in holder.take(own))  # nothing left behind
    other.put(moved)
    for stamp, ts, items in records[half:]:
        other.add(stamp, ts, items)
        by_other += other.release()
    assert other.held == 0 and other.late == 0
    assert by_other == [name for name in everything if name not in set(by_holder)]
    assert sorted(by_holder + by_other) == sorted(everything)
