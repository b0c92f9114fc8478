"""Fixtures for the operator tests: a RedisSink partition against the session's test Redis."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tailor.operators.redis.sink import RedisSink, _RedisSinkPartition
from tests.operators.sink_support import PREFIX, no_sleep


@pytest.fixture
def make_partition(redis_url: str) -> Iterator[Callable[..., _RedisSinkPartition]]:
    built: list[_RedisSinkPartition] = []

    def make(url: str = redis_url, **kwargs: Any) -> _RedisSinkPartition:
        kwargs.setdefault("sleep", no_sleep)
        part = RedisSink(url, prefix=PREFIX, **kwargs).build("redis", 0, 1)
        built.append(part)
        return part

    yield make
    for part in built:
        part.close()


@pytest.fixture
def sink(make_partition: Callable[..., _RedisSinkPartition]) -> _RedisSinkPartition:
    return make_partition()
