"""The aging sweep's clock and users (`tailor.state.segments.aging`): who is due, when, and after a
rescale."""

from __future__ import annotations

from tailor.state.segments.aging import AgingSweep, redistribute

DAY = 86400.0


def test_the_clock_is_the_slowest_active_partition_and_waits_for_known_ones() -> None:
    sweep = AgingSweep(every_s=DAY, origins=("p0", "p1"))
    assert sweep.batch("p0", "data", 3 * DAY, [("a", DAY)]) == []  # p1 has not spoken
    assert sweep.batch("p1", "data", 2.5 * DAY, [("b", 2.5 * DAY)]) == [("a", 2 * DAY)]
    assert sweep.batch("p1", "idle", None, []) == [("a", 3 * DAY), ("b", 3 * DAY)]  # p0 rules
    assert sweep.batch("p1", "data", 3.2 * DAY, [("b", 3.2 * DAY)]) == []
    sweep.batch("p0", "end", None, [])  # p0 ended: p1 alone
    assert sweep.batch("p1", "data", 4.5 * DAY, [("c", 4.1 * DAY)]) == [
        ("a", 4 * DAY),
        ("b", 4 * DAY),
    ]


def test_a_user_behind_the_last_boundary_is_due_at_once_and_forgotten_on_erasure() -> None:
    sweep = AgingSweep(every_s=DAY)
    sweep.batch("p0", "data", 2.5 * DAY, [("a", 2.5 * DAY)])
    assert sweep.batch("p0", "data", 2.6 * DAY, [("late", 1.5 * DAY)]) == [("late", 2 * DAY)]
    sweep.forget("late")
    assert sweep.batch("p0", "data", 3.1 * DAY, []) == [("a", 3 * DAY)]


def test_reorder_and_ttl() -> None:
    now = [0.0]
    sweep = AgingSweep(every_s=DAY, reorder_s=600.0, ttl_s=100.0, clock=lambda: now[0])
    sweep.batch("p0", "data", DAY - 1, [("a", DAY - 1)])
    assert sweep.batch("p0", "data", DAY + 300, []) == []  # within the disorder allowed
    now[0] = 50.0
    sweep.batch("p0", "data", DAY + 400, [("b", DAY + 400)])
    now[0] = 120.0  # a unseen for 120 s of processing time: forgotten when the clock moves
    assert sweep.batch("p0", "data", 2 * DAY + 700, []) == [("b", 2 * DAY)]


def test_redistribute_sends_users_and_partitions_to_their_readers_sweep() -> None:
    one = AgingSweep(every_s=DAY, origins=("p0", "p1"))
    one.batch("p0", "data", 5 * DAY, [("a", 4 * DAY)])
    one.batch("p1", "data", 6 * DAY, [("b", 5.5 * DAY)])
    other = AgingSweep(every_s=DAY)
    other.batch("p2", "data", 3 * DAY, [("c", 3 * DAY)])
    keys = {"p0": "w0", "p1": "w1", "p2": "w1"}
    new = redistribute([one.to_snapshot(), other.to_snapshot()], keys.__getitem__)
    assert set(new["w0"]["users"]) == {"a"} and set(new["w1"]["users"]) == {"b", "c"}
    assert set(new["w1"]["partitions"]) == {"p1", "p2"}
    assert new["w0"]["boundary"] == new["w1"]["boundary"] == 3 * DAY  # the earliest crossed
    resumed = AgingSweep.from_snapshot(new["w1"], every_s=DAY)
    assert resumed.batch("p2", "data", 7 * DAY, []) == [("b", 6 * DAY), ("c", 6 * DAY)]
