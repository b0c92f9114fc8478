"""One setting's changed value and where the built flow holds it (`settings_reach`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from tailor.flows.config import Settings


@dataclasses.dataclass(frozen=True)
class Reach:
    """A changed value of one key, and where the flow built from the settings holds it."""

    value: Any
    read: Callable[[Settings], Any]
    expected: Any = None  # what `read` gives for `value`: `value` itself (frozen) unless set
    also: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # keys it needs
