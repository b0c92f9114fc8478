"""The catalogue benchmark's pieces on a tiny shop (the real run is `python -m
benchmarks.catalogue`): its stream is seeded, and its snapshot parts and change counts describe
the models step's real snapshot."""

from __future__ import annotations

import doctest

import numpy as np

import benchmarks.catalogue_stream
from benchmarks.catalogue import measure
from benchmarks.catalogue_stream import CatalogueSpec, synthesise

SPEC = CatalogueSpec(items=2000, topic_size=50, seed=11)


def test_stream_examples() -> None:
    """benchmarks/ is outside pytest's doctest paths; its examples are checked here."""
    assert doctest.testmod(benchmarks.catalogue_stream).failed == 0


def test_stream_is_seeded_and_stays_in_topic() -> None:
    one, two = synthesise(SPEC, 5000), synthesise(SPEC, 5000)
    assert np.array_equal(one.items, two.items) and np.array_equal(one.users, two.users)
    topics = one.topic_of[one.items]
    by_user: dict[int, int] = {}
    same = total = 0
    for user, topic in zip(one.users.tolist(), topics.tolist(), strict=True):
        if user in by_user:
            total += 1
            same += by_user[user] == topic
        by_user[user] = topic
    assert same / total > 0.5  # random topics would give 1/40


def test_measure_reports_parts_and_changes() -> None:
    result = measure(SPEC, 3000, window=1000, sample_every=50)
    snapshot = result["snapshot"]
    assert result["items_seen"] > 0 and snapshot["bytes"] > 0
    cooc = snapshot["parts"]["cooc"]
    assert 0 < cooc["changed"]["changed"] <= cooc["changed"]["entries"] == result["items_seen"]
    assert snapshot["parts"]["segments"]["changed"]["changed"] == 0  # not fed here
    assert (
        0
        < result["incremental_bytes_estimate"]
        < sum(part["bytes"] for part in snapshot["parts"].values())
    )
