"""The per-user outputs step: after the models, keyed by user, expiring with the user.

The models step (`tailor.operators.models`) is global; what belongs to one user lives here, with the
user's key, so it is spread over the workers and forgotten with the user:

* the provisional output and its settlement: an output whose segments were not final goes out
  as it stands and is kept; a settlement from the models finds it here and sends it again
  with the settled segments (same version, `settled=True`; a correction when they differ);
* the updates since the last output, so an output carries one latency sample per event;
* the list last sent, and its prequential test: each interaction the models pass through is
  checked against the list stored before it, then a new draft replaces the list. The models
  send a user's tests and drafts in their learning order (`ForUser`), and draft a list right
  after learning the update it is drafted at, so a test never meets a list drafted from a
  model that already learned the tested item (test-then-train stays honest). The ranks go on
  as `Scores` to the live-quality windows (`tailor.operators.live_quality`);
* the segments last settled: an aged profile that changes none of them is not sent, and a
  settled cluster segment other than the last is a move, counted as `Moves` by the churn
  step (`tailor.operators.churn`).

A user is forgotten `ttl_s` of processing time after their last news (`notify_at`, as the
user-state step does), and at once on an `Erasure`, which then goes on to the sink. A user who
comes back after that is new here: their next interaction is not scored (no list is known),
and a settlement of an output from before the expiry finds nothing to settle (settlements
come within the event-time order's reordering delay, far below any sensible TTL).

`_waiting` (latency samples) is not snapshotted, as in the models step before: a resumed run
only loses a few latency samples.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import astuple, dataclass, fields
from datetime import UTC, datetime
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Stream, operator
from bytewax.operators import KeyedStream, StatefulBatchLogic

from tailor.operators.churn import segment_churn
from tailor.operators.live_quality import QualityParams, live_quality
from tailor.operators.metrics import ACTIVE_OUTPUT_USERS, SEGMENT_CORRECTIONS, SEGMENT_MOVES
from tailor.operators.outputs import aged_output, corrected, user_output
from tailor.operators.records import (
    ChurnReport,
    Erasure,
    FallbackList,
    ForUser,
    Moves,
    Recommendation,
    Scores,
    SegmentInfo,
    SegmentModel,
    Settlement,
    UserOutput,
)
from tailor.state import snapshots
from tailor.state.recs.live_quality import QualityReport, Scored
from tailor.state.recs.prequential import score_one
from tailor.state.segments.rules import RuleSet

__all__ = ["UserOutputsLogic", "UserOutputsParams", "UserOutputsState", "per_user_outputs"]


@dataclass(frozen=True)
class UserOutputsParams:
    """Configuration of the per-user outputs step (`tailor.flows.worker.user_outputs_params`)."""

    rules: Mapping[str, str]  # `segments.rules`
    rule_names: tuple[str, ...]  # every name a rule may use (`ModelParams.rule_names`)
    k: int  # `recs.k`: list length scored (the "@k" of the live quality)
    #: `state.ttl_s`: the user is forgotten when the user-state step forgets them.
    ttl_s: float


@dataclass
class UserOutputsState:
    """One user's outputs state; pickled per changed user by Bytewax snapshots."""

    #: The list last sent: (variant, item ids), for the test of the next interaction.
    shown: tuple[str, tuple[str, ...]] | None = None
    #: The last output not yet settled.
    provisional: UserOutput | None = None
    #: The segments of the last settled output: (version, segment, RFM tier, rule segments).
    #: An aged profile that changes none of them is not sent (`_age`).
    settled: tuple[int, str, str, tuple[str, ...]] | None = None

    def empty(self) -> bool:
        return self.shown is None and self.provisional is None

    def to_snapshot(self) -> dict[str, Any]:
        """Plain data (`tailor.state.snapshots`): the list as (variant, items), the output's
        fields."""
        provisional = self.provisional
        return {
            "shown": self.shown,
            "provisional": None if provisional is None else astuple(provisional),
            "settled": self.settled,
        }

    @classmethod
    def from_snapshot(cls, data: Mapping[str, Any]) -> UserOutputsState:
        values = data["provisional"]
        provisional = None
        if values is not None:
            names = [f.name for f in fields(UserOutput)]
            found = dict(zip(names, values, strict=True))
            recs = tuple(Recommendation(*r) for r in found["recs"])
            provisional = UserOutput(**found | {"recs": recs})
        settled = data["settled"]
        if settled is not None:
            version, segment, rfm, rules = settled
            settled = (version, segment, rfm, tuple(rules))
        return cls(shown=data["shown"], provisional=provisional, settled=settled)


UserOutputsIn = ForUser | Erasure
#: What the models step sends on (`tailor.operators.models.ModelsOut`, not imported: no cycle).
ModelsOut = ForUser | Erasure | SegmentInfo | SegmentModel | FallbackList
#: What the sink gets from here.
Written = (
    UserOutput | Erasure | SegmentInfo | SegmentModel | QualityReport | ChurnReport | FallbackList
)
UserOutputsOut = UserOutput | Erasure | Scores | Moves


class UserOutputsLogic(StatefulBatchLogic[UserOutputsIn, UserOutputsOut, bytes]):
    """One user's outputs inside a Bytewax `stateful_batch` operator."""

    def __init__(
        self,
        params: UserOutputsParams,
        rules: RuleSet,
        resume_state: UserOutputsState | bytes | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.params = params
        self.rules = rules
        self.clock = clock
        self.expires_at = clock() + params.ttl_s  # a resumed user gets a full TTL again
        self._timer: datetime | None = None
        self._waiting: list[tuple[float, float]] = []
        self._moves: list[int] = []  # this batch's moves (event-time hours)
        self.state: UserOutputsState
        if isinstance(resume_state, bytes):
            data = snapshots.decode(resume_state, "user_outputs")
            self.state = UserOutputsState.from_snapshot(data)
        else:
            self.state = resume_state if resume_state is not None else UserOutputsState()
        ACTIVE_OUTPUT_USERS.inc()  # down when the logic is discarded (erased, expired)

    def on_batch(self, values: list[UserOutputsIn]) -> tuple[Iterable[UserOutputsOut], bool]:
        out: list[UserOutputsOut] = []
        scored: list[Scored] = []
        self._moves = []
        for value in values:
            if isinstance(value, Erasure):
                self.state = UserOutputsState()
                self._waiting = []
                out.append(value)
            else:
                self._apply(value, out, scored)
        if scored:
            out.append(Scores(tuple(scored)))
        if self._moves:
            out.append(Moves(tuple(self._moves)))
        self.expires_at = self.clock() + self.params.ttl_s
        if self.state.empty() and not self._waiting:
            ACTIVE_OUTPUT_USERS.dec()
            return out, StatefulBatchLogic.DISCARD  # nothing left to keep
        return out, StatefulBatchLogic.RETAIN

    def _apply(self, news: ForUser, out: list[UserOutputsOut], scored: list[Scored]) -> None:
        """The user's updates in order: each test against the list stored before it, the
        draft at its place, then the settlements."""
        tests = iter(news.tests)
        test = next(tests, None)
        for index, timing in enumerate(news.updates):
            self._waiting.append(timing)
            while test is not None and test[0] == index:
                self._test(test[1], test[2], scored)
                test = next(tests, None)
            if index == news.drafted_at and news.draft is not None:
                output = user_output(news.draft, self.rules, self._waiting)
                self._waiting = []
                self.state.provisional = None if output.settled else output
                if output.settled:
                    self._settled(output)
                self.state.shown = (news.draft.variant, tuple(r.item_id for r in output.recs))
                out.append(output)
        for settlement in news.settlements:
            self._settle(settlement, out)
        for aged in news.aged:
            self._age(aged_output(news.user_id, aged, self.rules), out)

    def _age(self, output: UserOutput, out: list[UserOutputsOut]) -> None:
        """Send an aged profile when it moves the user between segments.

        Daily aging would otherwise rewrite and announce every profile every day. The
        comparison is with the last *settled* output's segments, never with what Redis holds:
        settlements and aged profiles reach this step in event-time order, so the outputs
        sent, and the profile a replay leaves, do not depend on how batches were cut."""
        provisional, settled = self.state.provisional, self.state.settled
        if provisional is not None and provisional.version > output.version:
            return  # a newer event's output went out already
        if settled is not None and (
            settled[0] > output.version or settled[1:] == _segments(output)[1:]
        ):
            return
        self._settled(output)
        out.append(output)

    def _settled(self, output: UserOutput) -> None:
        """Record the user's settled segments; a change of cluster segment is a move
        (`tailor.state.segments.churn`), counted at the output's event-time hour."""
        before, after = self.state.settled, _segments(output)
        if before is not None and before[1] and after[1] and before[1] != after[1]:
            self._moves.append(int(output.updated_at // 3600))
            SEGMENT_MOVES.inc()
        self.state.settled = after

    def _test(self, item: str, seq: int, scored: list[Scored]) -> None:
        """Score an interaction against the list last sent (none known: not scored)."""
        shown = self.state.shown
        if shown is not None:
            variant, items = shown
            scored.append((seq, variant, score_one(item, items, self.params.k).rank or 0))

    def _settle(self, s: Settlement, out: list[UserOutputsOut]) -> None:
        """Send the user's last output again with its segments as settled.

        Also when they settled as sent: after a crash, Redis may hold this version as the
        killed run sent it, provisional with other segments, and only this output can put that
        right. The sink writes and announces it only when the stored segments differ.
        """
        sent = self.state.provisional
        version, segment, name, rfm = s
        if sent is None or sent.version != version:
            return  # a newer output is on its way to be settled
        self.state.provisional = None
        if (sent.segment, sent.segment_name, sent.rfm_segment) != (segment, name, rfm or ""):
            SEGMENT_CORRECTIONS.inc()
        output = corrected(sent, s, self.rules)
        self._settled(output)
        out.append(output)

    def notify_at(self) -> datetime | None:
        """When this user is forgotten (wall clock); re-armed only when it moved by a tenth
        of the TTL, as in the user-state step (an early wake-up re-checks)."""
        if self.params.ttl_s <= 0:
            return None
        slack = self.params.ttl_s / 10
        if self._timer is None or self.expires_at - self._timer.timestamp() > slack:
            self._timer = datetime.fromtimestamp(self.expires_at, UTC)
        return self._timer

    def on_notify(self) -> tuple[Iterable[UserOutputsOut], bool]:
        """Forget the user if still inactive; Bytewax may wake us early, so check again."""
        if self.params.ttl_s <= 0 or self.clock() < self.expires_at:
            self._timer = None
            return [], StatefulBatchLogic.RETAIN
        ACTIVE_OUTPUT_USERS.dec()
        return [], StatefulBatchLogic.DISCARD

    def snapshot(self) -> bytes:
        """The state as plain data in a versioned envelope (`tailor.state.snapshots`): an immutable
        copy, cheaper than `deepcopy`."""
        return snapshots.encode("user_outputs", self.state.to_snapshot())


def _segments(output: UserOutput) -> tuple[int, str, str, tuple[str, ...]]:
    """What an aged profile must change to be sent: cluster segment, RFM tier, rules."""
    rules = tuple(sorted(output.rule_segments))
    return (output.version, output.segment, output.rfm_segment, rules)


@operator
def per_user_outputs(
    step_id: str,
    up: Stream[ModelsOut],
    params: UserOutputsParams,
    quality: QualityParams,
) -> Stream[Written]:
    """The models step's output made into what the sink writes.

    :arg up: The models step's output, unkeyed: `ForUser` and `Erasure` go to the user's
        outputs step (keyed by user); the rest (segment news) passes through.
    :arg params: The outputs step's configuration; bad rules raise here, at build time.
    :arg quality: The live-quality windows' configuration.
    :returns: The models' global records (segment news, `FallbackList`s), each user's
        `UserOutput`s and `Erasure`s, `QualityReport`s and `ChurnReport`s.
    """
    rules = RuleSet(params.rules, params.rule_names)
    split = op.branch("per_user", up, lambda item: isinstance(item, ForUser | Erasure))
    per_user: Stream[UserOutputsIn] = split.trues  # type: ignore[assignment]
    keyed: KeyedStream[UserOutputsIn] = op.key_on("by_user", per_user, lambda item: item.user_id)

    def builder(resume_state: UserOutputsState | bytes | None) -> UserOutputsLogic:
        return UserOutputsLogic(params, rules, resume_state)

    outputs = op.key_rm("unkey", op.stateful_batch("stateful_batch", keyed, builder))
    scores = op.branch("scores", outputs, lambda item: isinstance(item, Scores))
    scored: Stream[Scores] = scores.trues  # type: ignore[assignment]
    reports: Stream[QualityReport] = live_quality("quality", scored, quality)
    moved = op.branch("moves", scores.falses, lambda item: isinstance(item, Moves))
    moves: Stream[Moves] = moved.trues  # type: ignore[assignment]
    churn: Stream[ChurnReport] = segment_churn("churn", moves)
    return op.merge("all", split.falses, moved.falses, reports, churn)
