"""The bundled demo sample: valid, deterministic, and shaped like a shop."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from tailor.flows.sample import generate, write_jsonl
from tailor.state.profile.event import DEFAULT_EVENT_TYPES, Event, event_from_dict


def test_every_sample_event_is_valid_and_time_ordered() -> None:
    events = [event_from_dict(e, DEFAULT_EVENT_TYPES) for e in generate(users=200, seed=3)]
    assert all(isinstance(e, Event) for e in events)
    stamps = [e.ts for e in events if isinstance(e, Event)]
    assert stamps == sorted(stamps)
    assert len({e.event_id for e in events if isinstance(e, Event)}) == len(events)


def test_sample_has_a_funnel_and_several_devices() -> None:
    events = list(generate(users=300, seed=3))
    types = Counter(e["type"] for e in events)
    assert types["product_view"] > types["add_to_cart"] > types["purchase"] > 0
    assert {e["device"] for e in events} == {"mobile", "desktop", "tablet"}


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "c.jsonl"
    assert write_jsonl(a, users=50, seed=1) == write_jsonl(b, users=50, seed=1)
    write_jsonl(c, users=50, seed=2)
    assert a.read_bytes() == b.read_bytes() != c.read_bytes()
