"""Validation: every refusal has its reason, hostile input never raises, metrics stay bounded."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import bytewax.operators as op
import orjson
import pytest
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, TestingSource, run_main
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from tailor.operators.records import Accepted, DeadLetter, Progress, RawRecord, Stamp
from tailor.operators.validate import INTERNAL_ERROR, ValidationParams, validate, validate_record
from tailor.state.profile.event import (
    MAX_CATEGORIES,
    MAX_CATEGORY_LENGTH,
    MAX_ID_LENGTH,
    MAX_PRICE,
    MAX_QUANTITY,
    MAX_REFERRER_LENGTH,
    REASONS,
)
from tests.settings_support import validation_params

NOW = 1_700_000_000.0
PARAMS = validation_params()
GOOD: dict[str, Any] = {"event_id": "e1", "user_id": "u1", "type": "purchase", "ts": NOW}


def raw(payload: bytes, offset: str = "1-0") -> RawRecord:
    return RawRecord(payload, "tailor:events:0", offset, 123.0)


def check(payload: bytes, params: ValidationParams = PARAMS) -> Accepted | DeadLetter:
    return validate_record(raw(payload), params, NOW)


def refused(payload: bytes, params: ValidationParams = PARAMS) -> DeadLetter:
    out = check(payload, params)
    assert isinstance(out, DeadLetter), out
    return out


def sample(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_valid_event_is_accepted_with_its_read_time() -> None:
    out = check(orjson.dumps({**GOOD, "price": 9.5, "quantity": 2, "category": ["a", "b"]}))
    assert isinstance(out, Accepted)
    assert out.read_at == 123.0
    assert (out.event.user_id, out.event.amount, out.event.category) == ("u1", 19.0, ("a", "b"))


@pytest.mark.parametrize(
    ("payload", "reason", "detail"),
    [
        (b'{"user_id": "\xff"}', "not_utf8", "byte 13"),
        (b'{"user_id": ', "malformed_json", None),
        (b"NaN", "malformed_json", None),
        (b'{"ts": NaN}', "malformed_json", None),
        (b"[" * 5000 + b"]" * 5000, "malformed_json", None),
        (b'"\x01"', "malformed_json", None),
        (b"[1, 2]", "not_object", "list"),
        (b"42", "not_object", "int"),
        (orjson.dumps({**GOOD, "user_id": None}), "missing_field", "user_id"),
        (orjson.dumps({**GOOD, "user_id": "a\x00b"}), "wrong_type", "user_id"),
        (json.dumps({**GOOD, "quantity": 10**30}).encode(), "out_of_range", "quantity"),
        (orjson.dumps({**GOOD, "quantity": 1.5}), "wrong_type", "quantity"),
        (orjson.dumps({**GOOD, "price": "1"}), "wrong_type", "price"),
        (orjson.dumps({**GOOD, "type": "teleport"}), "unknown_type", "teleport"),
        (orjson.dumps({**GOOD, "ts": NOW + 86_401}), "ts_future", "ts"),
        (json.dumps({**GOOD, "ts": 10**30}).encode(), "ts_future", "ts"),
        (orjson.dumps({**GOOD, "ts": 631_151_999}), "ts_past", "ts"),
    ],
)
def test_each_reason(payload: bytes, reason: str, detail: str | None) -> None:
    out = refused(payload)
    assert out.reason == reason
    if detail is not None:
        assert out.detail == detail
    assert (out.payload, out.origin, out.offset) == (payload, "tailor:events:0", "1-0")


LONG = "u" * (MAX_ID_LENGTH + 1)


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("user_id", "u" * 10_000, "too_long"),
        ("user_id", LONG, "too_long"),
        ("event_id", LONG, "too_long"),
        ("item_id", LONG, "too_long"),
        ("session_id", LONG, "too_long"),
        ("device", LONG, "too_long"),
        ("type", LONG, "too_long"),
        ("referrer", "r" * (MAX_REFERRER_LENGTH + 1), "too_long"),
        ("category", "c" * (MAX_CATEGORY_LENGTH + 1), "too_long"),
        ("category", [f"c{i}" for i in range(MAX_CATEGORIES + 1)], "too_long"),
        ("price", -1, "out_of_range"),
        ("price", -0.01, "out_of_range"),
        ("price", MAX_PRICE * 2, "out_of_range"),
        ("quantity", 0, "out_of_range"),
        ("quantity", -3, "out_of_range"),
        ("quantity", MAX_QUANTITY + 1, "out_of_range"),
    ],
)
def test_valid_but_odd_values_have_their_own_reason(field: str, value: Any, reason: str) -> None:
    """Well-typed values beyond a documented limit are not `wrong_type`: a producer reading
    the dead letters must see which limit it crossed."""
    before = sample("tailor_dead_letters_total", {"reason": reason})
    out = refused(orjson.dumps({**GOOD, field: value}))
    assert (out.reason, out.detail) == (reason, field)
    assert sample("tailor_dead_letters_total", {"reason": reason}) - before == 1.0


def test_values_at_the_limits_are_accepted() -> None:
    at_limit = {
        **GOOD,
        "user_id": "u" * MAX_ID_LENGTH,
        "item_id": "i" * MAX_ID_LENGTH,
        "price": 0,
        "quantity": MAX_QUANTITY,
    }
    out = check(orjson.dumps(at_limit))
    assert isinstance(out, Accepted), out
    assert len(out.event.user_id) == MAX_ID_LENGTH


def test_too_large_letter_keeps_a_prefix_the_size_and_the_sha1() -> None:
    payload = b"{" + b" " * 70_000 + b"}"
    out = refused(payload)
    assert (out.reason, out.detail, out.origin, out.offset) == (
        "too_large",
        "70002 bytes",
        "tailor:events:0",
        "1-0",
    )
    assert (out.payload, out.size, out.sha1) == (
        payload[:1024],
        70_002,
        hashlib.sha1(payload).hexdigest(),
    )
    shorter = refused(payload, validation_params(too_large_prefix_bytes=10))
    assert shorter.payload == payload[:10]


def test_a_payload_the_source_cut_is_too_large_even_if_its_prefix_parses() -> None:
    prefix = orjson.dumps(GOOD)
    record = RawRecord(prefix, "tailor:events:0", "1-0", 123.0, None, 5_000_000, "ab" * 20)
    out = validate_record(record, PARAMS, NOW)
    assert isinstance(out, DeadLetter)
    assert (out.reason, out.detail, out.payload) == ("too_large", "5000000 bytes", prefix)
    assert (out.size, out.sha1) == (5_000_000, "ab" * 20)


def test_other_letters_hold_the_whole_payload_without_size_or_sha1() -> None:
    out = refused(b"[1, 2]")
    assert (out.payload, out.size, out.sha1) == (b"[1, 2]", None, None)


def test_bounds_are_inclusive_and_configurable() -> None:
    assert isinstance(check(orjson.dumps({**GOOD, "ts": NOW + 86_400})), Accepted)
    assert isinstance(check(orjson.dumps({**GOOD, "ts": 631_152_000})), Accepted)
    tight = validation_params(max_payload_bytes=10, event_types=("click",))
    assert refused(orjson.dumps(GOOD), tight).reason == "too_large"
    small = orjson.dumps({**GOOD, "type": "x"})
    assert refused(small, validation_params(max_payload_bytes=len(small))).reason == "unknown_type"


def test_refusals_are_counted_under_bounded_labels() -> None:
    known = ("purchase", "invalid")
    unknown = ("unknown", "invalid")
    before = [sample("tailor_events_total", {"type": t, "outcome": o}) for t, o in (known, unknown)]
    future_before = sample("tailor_dead_letters_total", {"reason": "ts_future"})
    check(orjson.dumps({**GOOD, "ts": NOW * 2}))  # known type, refused: labelled by type
    check(orjson.dumps({**GOOD, "type": "x" * 40}))  # unknown type string: "unknown"
    check(orjson.dumps({**GOOD, "type": {"nested": 1}}))
    check(orjson.dumps(GOOD))  # accepted: not counted as invalid
    after = [sample("tailor_events_total", {"type": t, "outcome": o}) for t, o in (known, unknown)]
    assert [a - b for a, b in zip(after, before, strict=True)] == [1.0, 2.0]
    assert sample("tailor_dead_letters_total", {"reason": "ts_future"}) - future_before == 1.0
    assert sample("tailor_events_total", {"type": "x" * 40, "outcome": "invalid"}) == 0.0


def assert_total(out: Accepted | DeadLetter) -> None:
    if isinstance(out, DeadLetter):
        assert out.reason in REASONS
        # an internal error is a `wrong_type` whose detail says so (other details of
        # `wrong_type` name a field); an `unknown_type` detail is the sender's own type
        assert not (out.reason == "wrong_type" and out.detail.startswith(INTERNAL_ERROR)), out
    else:
        assert isinstance(out, Accepted)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise(payload: bytes) -> None:
    assert_total(check(payload))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children)
    ),
    max_leaves=20,
)
FIELDS = (
    "event_id",
    "user_id",
    "type",
    "ts",
    "item_id",
    "category",
    "price",
    "quantity",
    "consent",
)
field_values = (
    json_values
    | st.sampled_from(sorted(PARAMS.event_types))
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(min_value=0, max_value=4e9)
    | st.text(alphabet=st.characters(codec="utf-8"), max_size=300)
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_arbitrary_json_never_raises(value: Any) -> None:
    assert_total(check(json.dumps(value).encode()))


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.sampled_from(FIELDS), field_values))
def test_schema_shaped_objects_never_raise(obj: dict[str, Any]) -> None:
    # stdlib json: it writes huge ints, NaN and Infinity, which orjson refuses to produce
    assert_total(check(json.dumps({**GOOD, **obj}).encode()))


def test_operator_splits_oks_and_errs_in_a_flow() -> None:
    records = [
        raw(orjson.dumps({**GOOD, "event_id": "a"}), "1-0"),
        raw(b"garbage", "2-0"),
        raw(orjson.dumps({**GOOD, "event_id": "b", "ts": NOW + 10 * 86_400}), "3-0"),
        raw(orjson.dumps({**GOOD, "event_id": "c"}), "4-0"),
    ]
    oks: list[Accepted] = []
    errs: list[DeadLetter] = []
    flow = Dataflow("validate-test")
    inp = op.input("inp", flow, TestingSource(records))
    out = validate("validate", inp, PARAMS.settings, now=lambda: NOW)
    op.output("oks", out.oks, TestingSink(oks))
    op.output("errs", out.errs, TestingSink(errs))
    run_main(flow)
    assert [a.event.event_id for a in oks] == ["a", "c"]
    assert [(e.reason, e.offset) for e in errs] == [("malformed_json", "2-0"), ("ts_future", "3-0")]


def test_every_stamped_record_leaves_as_an_event_or_as_progress() -> None:
    stamp, end = Stamp("s", 0, 3), Stamp("s", 1, 1, "end")
    records = [
        RawRecord(orjson.dumps({**GOOD, "event_id": "a"}), "s", "1-0", 1.0, stamp),
        RawRecord(b"garbage", "s", "2-0", 1.0, stamp),
        RawRecord(orjson.dumps({**GOOD, "event_id": "b"}), "s", "3-0", 1.0, stamp),
        RawRecord(b"", "s", "", 1.0, end),  # the partition's end: not a payload
    ]
    oks: list[Accepted] = []
    errs: list[DeadLetter] = []
    progress: list[Progress] = []
    flow = Dataflow("validate-progress")
    out = validate(
        "validate", op.input("inp", flow, TestingSource(records)), PARAMS.settings, lambda: NOW
    )
    op.output("oks", out.oks, TestingSink(oks))
    op.output("errs", out.errs, TestingSink(errs))
    op.output("progress", out.progress, TestingSink(progress))
    run_main(flow)
    assert [(a.event.event_id, a.stamp) for a in oks] == [("a", stamp), ("b", stamp)]
    assert [(e.offset, e.stamp) for e in errs] == [("2-0", stamp)]
    assert sorted(progress, key=lambda p: p.stamp.seq) == [Progress(stamp), Progress(end)]


@pytest.mark.parametrize("tz", ["Mars/Olympus", "+25:00", "UTC+2", 5, "../etc/passwd", "a" * 300])
def test_a_time_zone_nobody_knows_is_refused(tz: Any) -> None:
    out = refused(orjson.dumps({**GOOD, "tz": tz}))
    assert (out.reason, out.detail) == ("wrong_type", "tz")


@pytest.mark.parametrize("tz", ["Europe/Paris", "America/Sao_Paulo", "+05:30", "-03:00", "UTC"])
def test_an_iana_zone_or_an_offset_is_kept(tz: str) -> None:
    out = check(orjson.dumps({**GOOD, "tz": tz}))
    assert isinstance(out, Accepted) and out.event.tz == tz
