"""Pseudonyms: keyed, stable, and applied to every event before it is keyed."""

from __future__ import annotations

import hashlib
import hmac

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, TestingSource, run_main

from tailor.operators.pseudonym import pseudonym, pseudonymize
from tailor.operators.records import Accepted
from tailor.state.profile.event import Event


def test_pseudonym_is_the_documented_hmac() -> None:
    expected = hmac.new(b"s3cret", b"user-42", hashlib.sha256).hexdigest()[:32]
    assert pseudonym(b"s3cret", "user-42") == expected
    assert pseudonym(b"s3cret", "user-42") != pseudonym(b"s3cret", "user-43")


def test_operator_replaces_user_ids_and_keeps_everything_else() -> None:
    events = [
        Accepted(Event("e1", "alice", "click", 1.0, item_id="i1", device="mobile"), 5.0),
        Accepted(Event("e2", "bob", "purchase", 2.0, item_id="i2", price=3.0), 6.0),
    ]
    out: list[Accepted] = []
    flow = Dataflow("pseudonyms")
    op.output(
        "out",
        pseudonymize("p", op.input("in", flow, TestingSource(events)), b"k"),
        TestingSink(out),
    )
    run_main(flow)
    assert [a.event.user_id for a in out] == [pseudonym(b"k", "alice"), pseudonym(b"k", "bob")]
    assert "alice" not in repr(out) and "bob" not in repr(out)
    assert [(a.event.event_id, a.event.item_id, a.read_at) for a in out] == [
        ("e1", "i1", 5.0),
        ("e2", "i2", 6.0),
    ]
