"""State TTL: an inactive user's state is dropped after `ttl_s` of processing time."""

from __future__ import annotations

from datetime import UTC, datetime

from prometheus_client import REGISTRY

from tailor.operators.records import Accepted
from tailor.operators.user_state import UserStateLogic
from tailor.state.profile.event import Event
from tests.settings_support import state_params


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def view(n: int, ts: float) -> Accepted:
    return Accepted(Event(f"e{n}", "u", "product_view", ts, item_id=f"i{n}"), 0.0)


def gauge(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


def test_state_expires_after_ttl_of_inactivity_and_not_before() -> None:
    clock = FakeClock(1_000.0)
    active = gauge("tailor_active_users")
    expired = gauge("tailor_expired_users_total")
    logic = UserStateLogic(state_params(ttl_s=60.0), clock=clock)
    assert gauge("tailor_active_users") == active + 1
    logic.on_batch([view(1, 5.0)])
    assert logic.notify_at() == datetime.fromtimestamp(1_060.0, UTC)

    clock.now = 1_030.0
    logic.on_batch([view(2, 6.0)])  # activity pushes the expiry back
    assert logic.notify_at() == datetime.fromtimestamp(1_090.0, UTC)
    clock.now = 1_089.0
    assert logic.on_notify() == ([], False)  # woken early: keep

    clock.now = 1_090.0
    assert logic.on_notify() == ([], True)  # DISCARD
    assert gauge("tailor_active_users") == active
    assert gauge("tailor_expired_users_total") == expired + 1


def test_no_ttl_means_no_wake_up() -> None:
    logic = UserStateLogic(state_params(ttl_s=0.0), clock=FakeClock(0.0))
    logic.on_batch([view(1, 5.0)])
    assert logic.notify_at() is None
    assert logic.on_notify() == ([], False)
