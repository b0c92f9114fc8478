"""Prototype for segments that age (issue 23): when must a customer's RFM tier be looked at
again, and how close to a batch RFM does each schedule keep the stored tiers?

    python -m benchmarks.prototypes.aging [--data cdnow|online-retail]

The purchases of a dataset (the worker's own adapter) are replayed in time order into the
streaming tiers (`tailor.state.segments.rfm_tiers.RFMTiers`, learned at every purchase as the models
step does). A customer's *stored* tier is re-evaluated (with the cut points and clock of that
moment) at each of their purchases, as today, and at the *ticks* a schedule asks for, in
event time, interleaved with the stream:

- frozen: no tick (today: the tier of the moment of the last purchase, recency 0);
- ages: ticks at fixed ages after the last purchase (1, 7, 14, 30, 60, 90, 180, 270, 365 days);
- crossing: one tick when the recency crosses the next recency cut point as they stand at the
  last evaluation (re-armed at each tick);
- crossing + end: crossing, plus every customer evaluated once at the end of the replay;
- daily / weekly sweep: every customer known so far evaluated whenever event time crosses a
  day (a week).

At the end each stored tier is compared with a batch RFM over all customers at that moment
(`tailor.state.segments.batch_rfm`). Evaluations per customer are the CPU aging costs; tier changes
per customer are the writes (and notices) it costs.
"""

from __future__ import annotations

import argparse
import heapq
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson

from tailor.operators.replay.adapters import read_cdnow, read_online_retail
from tailor.state.segments.batch_rfm import batch_cuts, batch_tier
from tailor.state.segments.rfm_tiers import RFMTiers

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
DAY = 86400.0
CAP = 365.0
AGES = (1, 7, 14, 30, 60, 90, 180, 270, 365)

Purchase = tuple[float, str, float]  # (ts, customer, amount)


def purchases(data: str) -> list[Purchase]:
    if data == "cdnow":
        payloads: Iterator[bytes] = read_cdnow(DATA / "cdnow" / "cdnow_master.csv")
    else:
        payloads = read_online_retail(DATA / "online-retail" / "online_retail.csv.gz")
    out = []
    for payload in payloads:
        e = orjson.loads(payload)
        out.append((float(e["ts"]), e["user_id"], float(e["price"]) * float(e.get("quantity", 1))))
    out.sort(key=lambda p: p[0])  # stable: file order within a time
    return out


class Customers:
    """Each customer's last purchase, count and spend, and the tier stored for them."""

    def __init__(self) -> None:
        self.last: dict[str, float] = {}
        self.count: dict[str, int] = {}
        self.spend: dict[str, float] = {}
        self.stored: dict[str, str | None] = {}
        self.ticks = 0
        self.changes = 0  # evaluations that changed a stored tier: writes to Redis

    def buy(self, ts: float, user: str, amount: float) -> None:
        self.last[user] = ts
        self.count[user] = self.count.get(user, 0) + 1
        self.spend[user] = self.spend.get(user, 0.0) + amount

    def values(self, user: str, now: float) -> tuple[float, float, float]:
        return min(CAP, (now - self.last[user]) / DAY), self.count[user], self.spend[user]

    def evaluate(self, tiers: RFMTiers, user: str, now: float) -> None:
        tier = tiers.tier(*self.values(user, now))
        if user in self.stored and tier != self.stored[user]:
            self.changes += 1
        self.stored[user] = tier


Schedule = Callable[[RFMTiers, Customers, str, float], list[float]]


def no_ticks(tiers: RFMTiers, customers: Customers, user: str, now: float) -> list[float]:
    return []


def fixed_ages(tiers: RFMTiers, customers: Customers, user: str, now: float) -> list[float]:
    """Ticks at each fixed age after the last purchase (armed at the purchase only)."""
    last = customers.last[user]
    return [last + age * DAY for age in AGES] if now == last else []


def crossing(tiers: RFMTiers, customers: Customers, user: str, now: float) -> list[float]:
    """One tick when the recency reaches the next recency cut point above it (a tie scores
    worse, so at the cut point itself); a day later while the tiers warm up."""
    cuts = tiers.cut_points()
    recency = customers.values(user, now)[0]
    ahead = [c for c in cuts[0] if c > recency] if cuts else [recency + 1.0]
    return [customers.last[user] + min(ahead) * DAY] if ahead else []


def replay(
    stream: list[Purchase], schedule: Schedule, final: bool, sweep_s: float = 0.0
) -> tuple[float, float, float]:
    """Share of customers whose stored tier equals batch RFM at the end; evaluations (ticks)
    and tier changes per customer. `sweep_s` > 0: every customer is also evaluated whenever
    event time crosses a multiple of it (a periodic sweep)."""
    tiers, customers = RFMTiers(), Customers()
    next_sweep = (stream[0][0] // sweep_s + 1) * sweep_s if sweep_s else float("inf")
    heap: list[tuple[float, str, float]] = []  # (due, user, last purchase when armed)

    def run_ticks(until: float) -> None:
        while heap and heap[0][0] <= until:
            due, user, armed = heapq.heappop(heap)
            if customers.last[user] != armed:
                continue  # bought since: re-armed then
            tiers.learn_one(user, 0.0, 0.0, 0.0, now=due)  # moves the clock only
            customers.evaluate(tiers, user, due)
            customers.ticks += 1
            for at in schedule(tiers, customers, user, due):
                if at > due:
                    heapq.heappush(heap, (at, user, armed))

    armed_at: dict[str, float] = {}  # the purchase time a customer's ticks were armed for
    for ts, user, amount in stream:
        run_ticks(ts)
        while ts >= next_sweep:
            tiers.learn_one(user, 0.0, 0.0, 0.0, now=next_sweep)
            for known in customers.last:
                customers.evaluate(tiers, known, next_sweep)
                customers.ticks += 1
            next_sweep += sweep_s
        customers.buy(ts, user, amount)
        tiers.learn_one(user, *customers.values(user, ts), now=ts)
        customers.evaluate(tiers, user, ts)
        if armed_at.get(user) != ts:  # an order's lines share a time: arm once
            armed_at[user] = ts
            for at in schedule(tiers, customers, user, ts):
                heapq.heappush(heap, (at, user, ts))
    end = stream[-1][0]
    run_ticks(end)
    if final:
        for user in customers.last:
            customers.evaluate(tiers, user, end)
    finals = {user: customers.values(user, end) for user in customers.last}
    cuts = batch_cuts(list(finals.values()))
    same = sum(1 for u, v in finals.items() if customers.stored[u] == batch_tier(v, cuts))
    n = len(finals)
    return same / n, customers.ticks / n, customers.changes / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", choices=("cdnow", "online-retail"), default="cdnow")
    args = parser.parse_args()
    stream = purchases(args.data)
    print(f"{args.data}: {len(stream):,} purchases")
    print(
        "| schedule | tier = batch RFM at the end | evaluations / customer | changes / customer |"
    )
    print("|---|---|---|---|")
    for name, schedule, final, sweep in [
        ("frozen (today)", no_ticks, False, 0.0),
        ("fixed ages", fixed_ages, False, 0.0),
        ("cut-point crossing", crossing, False, 0.0),
        ("cut-point crossing + end of replay", crossing, True, 0.0),
        ("daily sweep of every customer", no_ticks, False, DAY),
        ("weekly sweep of every customer", no_ticks, False, 7 * DAY),
    ]:
        same, ticks, changes = replay(stream, schedule, final, sweep)
        print(f"| {name} | {same:.1%} | {ticks:.2f} | {changes:.2f} |")


if __name__ == "__main__":
    main()
