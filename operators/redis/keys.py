"""The Redis key schema: every key and channel Tailor writes, built in one place.

Every name starts with a prefix (config `redis.prefix`, default ``tailor``) so several
deployments can share one Redis. Readers (the CLI, tests, consumers) import these functions
instead of formatting strings, so the schema cannot drift between writer and reader.

===============================  =======  ==================================================
Key                              Type     Contents
===============================  =======  ==================================================
``{p}:events:{n}``               stream   Input partition ``n``
                                          (`tailor.operators.redis.routing`): producers
                                          route by ``crc32(user_id) % partitions``
                                          (`partition_for`; with several workers, among the
                                          partitions the user's worker reads).
``{p}:user:{user_id}``           hash     The profile. Every field value is JSON:
                                          ``version`` (int, per-user write order),
                                          ``updated_at`` (event time of the newest event,
                                          epoch seconds, never wall clock), ``segment``
                                          (cluster segment id, e.g. ``"cluster:3"``, ``""``
                                          in the segmenter's warm-up), ``segment_name``,
                                          ``rfm_segment`` (RFM tier id, ``""`` for users
                                          who never bought), ``rule_segments`` (list of rule
                                          names, sorted), ``memberships`` (list of the
                                          segment ids whose sets hold the user), then one
                                          field per profile entry (``features``,
                                          ``device``, ...), keys sorted.
``{p}:recs:{user_id}``           string   ``{"version": v, "items": [{"item_id", "score",
                                          "source"}, ...]}``, best first; expires
                                          ``output.recs_ttl_s`` after its last write when
                                          that is set (0, the default: never).
``{p}:fallback:{name}``          string   A list for users without history (`FallbackList`):
                                          JSON ``{"at", "items": [{"item_id", "score"}],
                                          "version"}``, best first; ``at`` the event time
                                          scores are decayed to, ``version`` the list's place
                                          in the models' learning order. Names
                                          (`fallback_name`): ``popular``, ``trending``,
                                          ``segment:{segment_id}``, ``category:{category}``.
``{p}:fallbacks``                hash     List name → its version: which lists exist.
``{p}:segment:{segment_id}``     set      User ids in the segment. Segment ids are
                                          ``cluster:{n}`` for the clusterer,
                                          ``rfm:{tier}`` for RFM tiers (``champions``, ...)
                                          and ``rule:{name}`` for rule segments.
``{p}:segments``                 hash     Segment id → JSON ``{"centroid", "name",
                                          "version", "changed_at"}``: what a cluster means.
``{p}:segments:model``           hash     ``version`` (users learned) and ``record``: JSON
                                          of the whole segment model (clusterer and params,
                                          features and transforms, per segment name,
                                          centroid, z-scores; quality and RFM cut points),
                                          replaced every ``segments.publish_every`` users.
                                          A segment's size is its set's ``SCARD``.
``{p}:segments:churn``           hash     Users whose settled cluster segment changed, per
                                          event-time hour (`tailor.state.segments.churn`):
                                          ``hour`` (epoch hours, the newest with a move),
                                          ``moves``, ``previous_hour``, ``previous_moves``.
``{p}:segments:history``         stream   At each published segment model: ``version``,
                                          ``at`` (its event time) and ``sizes`` (JSON:
                                          cluster segment id → members then);
                                          ``MAXLEN ~ 10000``.
``{p}:segments:resegment``       string   The last ``tailor resegment`` result (JSON: the
                                          batch methods, their agreement with the live
                                          segments, the suggested number of segments).
``{p}:updates``                  channel  Pub/sub notice per applied user write: JSON
                                          ``{"user_id", "version", "segment",
                                          "rule_segments", "changed"}``; ``changed`` lists
                                          which of ``profile``, ``segment``,
                                          ``rule_segments``, ``recs`` differ from before.
``{p}:updates``                  stream   The same notices, field ``notice``, capped with
                                          ``MAXLEN ~ output.updates_maxlen`` (channels and
                                          keys are separate namespaces in Redis).
``{p}:deadletter``               stream   Refused input: fields ``reason`` (see
                                          `tailor.state.profile.event.REASONS`), ``detail``,
                                          ``payload`` (the raw bytes, unchanged), ``origin``,
                                          ``offset``; ``MAXLEN ~ output.deadletter_maxlen``.
                                          One entry per input (``origin``, ``offset``),
                                          however often a replay refuses it again.
``{p}:demo``                     string   Set by ``tailor demo`` on the prefix it writes:
                                          a later demo may clear this prefix's Tailor keys.
``{p}:meta``                     hash     What a reader must know to read the rest: ``ids``
                                          is ``plain`` (raw user ids) or ``hmac-sha256:``
                                          plus a 16-hex-digit fingerprint of the pseudonym
                                          key (an HMAC of a fixed label, never the key),
                                          written by every worker when it starts
                                          (`tailor.operators.pseudonym.id_mode`); `tailor forget`
                                          refuses to run with another mode. ``schema``: the
                                          stored data's schema (`tailor.operators.redis.upgrade`).
``{p}:heartbeat:{worker}``       string   Written by each Bytewax worker of a long-running
                                          ``tailor run`` every ``output.heartbeat_every_s``
                                          from its own thread, with a TTL of three periods:
                                          JSON ``{"at": wall-clock epoch seconds, "worker":
                                          w, "workers": n}``; deleted at a clean stop
                                          (`tailor.operators.redis.heartbeat`). ``tailor
                                          serve``'s ``/readyz`` reads it.
``{p}:deadletter:index``         zset     The identities in the dead-letter stream: JSON
                                          ``[origin, offset]`` → milliseconds of its entry
                                          id; trimmed with the stream
                                          (`tailor.operators.redis.deadletters`).
===============================  =======  ==================================================

A user's profile, recs and memberships are written by one Lua script call, so a reader never
sees a profile whose memberships are from another version. A write whose ``version`` is not
newer than the stored one is skipped: replays after a restart never move a user backwards.
A published list and its field in ``{p}:fallbacks`` are written together, under the same guard.

>>> user_key("tailor", "u1"), segment_key("tailor", "rule:big_spender")
('tailor:user:u1', 'tailor:segment:rule:big_spender')
"""

from __future__ import annotations

DEFAULT_PREFIX = "tailor"
#: The field of `meta_key` holding how user ids are stored (`tailor.operators.pseudonym.id_mode`).
META_IDS = "ids"
#: The field of `meta_key` holding the schema of the stored data (`tailor.operators.redis.upgrade`).
META_SCHEMA = "schema"


def stream_key(prefix: str, partition: int) -> str:
    """The Redis stream holding one input partition's events (`tailor.operators.redis.routing`).

    >>> stream_key("shop", 0)
    'shop:events:0'
    """
    return f"{prefix}:events:{partition}"


def is_event_stream(prefix: str, name: str) -> bool:
    """`name` is one of the prefix's input partitions (not a replay file, another prefix).

    >>> is_event_stream("t", "t:events:1"), is_event_stream("t", "file:a.jsonl")
    (True, False)
    """
    head = stream_key(prefix, 0).removesuffix("0")
    return name.startswith(head) and name[len(head) :].isdigit()


def user_key(prefix: str, user_id: str) -> str:
    """Hash holding one user's profile."""
    return f"{prefix}:user:{user_id}"


def recs_key(prefix: str, user_id: str) -> str:
    """String holding one user's recommendations as JSON."""
    return f"{prefix}:recs:{user_id}"


def segment_key(prefix: str, segment_id: str) -> str:
    """Set of the user ids in one segment (``cluster:3``, ``rule:engaged_buyer``)."""
    return f"{prefix}:segment:{segment_id}"


#: The kinds of published list whose name is the kind alone; the others name their group.
_UNGROUPED = frozenset({"popular", "trending"})


def fallback_name(kind: str, group: str = "") -> str:
    """A published list's name: its field in `fallbacks_key`, the tail of its key.

    >>> fallback_name("popular"), fallback_name("segment", "cluster:3")
    ('popular', 'segment:cluster:3')
    """
    return kind if kind in _UNGROUPED else f"{kind}:{group}"


def fallback_key(prefix: str, name: str) -> str:
    """String holding one published list as JSON (`fallback_name`).

    >>> fallback_key("shop", fallback_name("category", "shoes"))
    'shop:fallback:category:shoes'
    """
    return f"{prefix}:fallback:{name}"


def fallbacks_key(prefix: str) -> str:
    """Hash of every published list's name → its version: what a reader can ask for."""
    return f"{prefix}:fallbacks"


def segments_key(prefix: str) -> str:
    """Hash describing every cluster segment (name, centroid, version)."""
    return f"{prefix}:segments"


def quality_key(prefix: str) -> str:
    """Hash with the live recommendation quality (``version``, JSON ``record``)."""
    return f"{prefix}:quality:recs"


def model_key(prefix: str) -> str:
    """Hash with the published segment model (``version``, JSON ``record``)."""
    return f"{prefix}:segments:model"


#: Entries kept in the segment history stream (about: MAXLEN ~): a record is published every
#: `segments.publish_every` learned users, so this spans a long time.
SEGMENT_HISTORY_MAXLEN = 10_000


def segment_history_key(prefix: str) -> str:
    """Stream of the segments' sizes at each published segment model (`MODEL_SCRIPT`)."""
    return f"{prefix}:segments:history"


def resegment_key(prefix: str) -> str:
    """String with the last `tailor resegment` result as JSON (`tailor.flows.resegment`)."""
    return f"{prefix}:segments:resegment"


def churn_key(prefix: str) -> str:
    """Hash counting users who changed cluster segment in the current and previous hour."""
    return f"{prefix}:segments:churn"


def updates_channel(prefix: str) -> str:
    """Pub/sub channel of change notices: live, lost when nobody listens."""
    return f"{prefix}:updates"


def updates_stream(prefix: str) -> str:
    """Stream of the same notices: kept (capped) for consumers that were away."""
    return f"{prefix}:updates"


def deadletter_stream(prefix: str) -> str:
    """Stream of refused input, raw payload included, for inspection and replay."""
    return f"{prefix}:deadletter"


def demo_marker_key(prefix: str) -> str:
    """String set by `tailor demo` on its prefix: "an earlier demo wrote here" (see
    `tailor.flows.demo_prefix`)."""
    return f"{prefix}:demo"


def meta_key(prefix: str) -> str:
    """Hash describing how the data under the prefix is stored (field `META_IDS`)."""
    return f"{prefix}:meta"


def deadletter_index(prefix: str) -> str:
    """Sorted set of the inputs already in the dead-letter stream: a replay skips them."""
    return f"{prefix}:deadletter:index"


def control_key(prefix: str) -> str:
    """Stream of requests to the worker: erase a user, block an item
    (`tailor.operators.redis.control`)."""
    return f"{prefix}:control"


def optout_key(prefix: str) -> str:
    """Set of the (stored) ids of users who opted out; read by every worker as it starts."""
    return f"{prefix}:optout"


def blocklist_key(prefix: str) -> str:
    """The items never to recommend: the record of truth, which the sink also enforces."""
    return f"{prefix}:blocklist"


def heartbeat_key(prefix: str, worker: int) -> str:
    """String with one worker's last heartbeat (`tailor.operators.redis.heartbeat`)."""
    return f"{prefix}:heartbeat:{worker}"


def schema_patterns() -> tuple[str, ...]:
    """Glob patterns, after ``<prefix>:``, of every key the worker and the CLI write.

    Built from the functions above with an empty prefix, so a renamed key is followed; a new
    key function must be added here (tests/flows/test_demo.py checks that a demo run leaves no
    key outside these patterns).
    """
    stream = stream_key("", 0).rpartition(":")[0] + ":*"
    per_id = (
        user_key("", "*"),
        recs_key("", "*"),
        segment_key("", "*"),
        fallback_key("", "*"),
        stream,
        heartbeat_key("", 0).removesuffix("0") + "*",
    )
    single = (
        fallbacks_key(""),
        segments_key(""),
        model_key(""),
        churn_key(""),
        resegment_key(""),
        segment_history_key(""),
        quality_key(""),
        updates_stream(""),
        deadletter_stream(""),
        deadletter_index(""),
        control_key(""),
        optout_key(""),
        blocklist_key(""),
        demo_marker_key(""),
        meta_key(""),
    )
    return tuple(pattern.removeprefix(":") for pattern in (*per_id, *single))
