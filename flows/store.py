"""Maintenance of the recovery store: an integrity check before Bytewax opens it, and compaction.

What Bytewax 0.21.1 keeps (`src/recovery.rs`): each partition is a SQLite file with tables
`parts`, `exs`, `fronts`, `commits` and `snaps`. `snaps` holds one row per (step, state key,
epoch); a key whose state was discarded (a user expired by `state.ttl_s` or erased) gets a
row with a NULL snapshot, a tombstone. At each commit Bytewax deletes the rows older than a
key's newest one, but never the newest, so a tombstone stays for ever: the store grows with
every user ever seen, and an erased user's id stays on disk as a key. Bytewax's deletes also
leave the old rows' bytes in free pages, and its connection keeps a write-ahead log.

Compaction deletes the tombstones that are the only row of their key (loading such a key
yields nothing, exactly as with no row at all; a tombstone next to an older snapshot must
stay, or a resume would load the older state), then rewrites the file (VACUUM, without a
WAL, temporary data in memory), so no stale page keeps a deleted row's bytes.

Compaction never runs beside Bytewax: Bytewax's writes `unwrap()` a "database is locked"
(after its 5 s `busy_timeout`) into a worker panic, and a VACUUM holds the write lock for as
long as it takes. Two guards: a `tailor run` worker holds `StoreLock` shared for its whole
run and a compaction holds it exclusive (so a worker starting meanwhile waits for the
compaction instead of panicking); and leaving WAL mode needs the only connection to the
file, so a store that any other process has open (say, `python -m bytewax.run`) is left alone.
"""

from __future__ import annotations

import fcntl
import logging
import os
import pickle
import sqlite3
import struct
import time
from collections.abc import Iterator, Mapping
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

from bytewax.dataflow import Dataflow
from bytewax.inputs import FixedPartitionedSource

from tailor.flows.config import Config, ConfigError
from tailor.flows.recovery import partition_files, store_path
from tailor.flows.rescale import drop_unfinished, refuse_other_workers, rescale_store, resume_epoch
from tailor.state import snapshots

__all__ = [
    "Compaction",
    "StoreBusy",
    "StoreLock",
    "check_store",
    "compact_store",
    "release_after_run",
    "source_parts",
    "store_command",
    "store_size",
    "take_for_run",
]

log = logging.getLogger("tailor")

#: The tables every Bytewax 0.21 partition has (its migrations create them on first open).
TABLES = frozenset({"parts", "exs", "fronts", "commits", "snaps"})

#: Deletes the tombstones that are their key's only row; see the module docstring.
DELETE_LONE_TOMBSTONES = """
DELETE FROM snaps
WHERE ser_change IS NULL
  AND NOT EXISTS (
    SELECT 1 FROM snaps AS other
    WHERE other.step_id = snaps.step_id
      AND other.state_key = snaps.state_key
      AND other.snap_epoch <> snaps.snap_epoch
  )
"""

#: The lock file a worker and a compaction share, inside the store directory.
LOCK_FILE = "tailor.lock"

START_OVER = (
    "move the directory aside to start over (the worker then starts from empty state and "
    "re-reads the streams from their start: events already trimmed from them are lost "
    "to the state)"
)


class StoreBusy(Exception):
    """Another process (a running worker) has a partition of the store open."""


@dataclass(frozen=True)
class Compaction:
    """What one compaction of a store did."""

    tombstones: int
    rows: int
    bytes_before: int
    bytes_after: int
    seconds: float

    def describe(self, store: Path) -> str:
        return (
            f"recovery store {store} compacted: {self.tombstones} tombstone(s) removed, "
            f"{self.rows} row(s) kept, {self.bytes_before:,} -> {self.bytes_after:,} bytes "
            f"in {self.seconds:.2f} s"
        )


def store_size(store: Path) -> int:
    """Bytes of every file in the store directory, write-ahead logs included."""
    return sum(p.stat().st_size for p in store.iterdir() if p.is_file()) if store.is_dir() else 0


@contextmanager
def _open(path: Path, timeout_s: float) -> Iterator[sqlite3.Connection]:
    """An existing partition, read-write but never created (an empty file stays empty)."""
    uri = f"{path.resolve().as_uri()}?mode=rw"
    with closing(sqlite3.connect(uri, uri=True, timeout=timeout_s, isolation_level=None)) as conn:
        yield conn


def _partition_meta(path: Path) -> tuple[int, int]:
    """(index, count) of a partition, or ConfigError naming the file and what is wrong."""
    try:
        with _open(path, timeout_s=5.0) as conn:
            verdict = [row[0] for row in conn.execute("PRAGMA quick_check")]
            if verdict != ["ok"]:
                raise ConfigError(_damaged(path, f"integrity check: {verdict[0]}"))
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
            if missing := TABLES - tables:
                raise ConfigError(_damaged(path, f"no table {', '.join(sorted(missing))}"))
            parts = conn.execute("SELECT part_index, part_count FROM parts").fetchall()
    except sqlite3.DatabaseError as exc:  # not a database, malformed, unreadable
        raise ConfigError(_damaged(path, str(exc))) from exc
    if len(parts) != 1:
        raise ConfigError(_damaged(path, f"{len(parts)} partition rows instead of one"))
    return int(parts[0][0]), int(parts[0][1])


def _damaged(path: Path, reason: str) -> str:
    return f"recovery.dir: {path} is damaged ({reason}); {START_OVER}"


def check_store(store: Path, sources: Mapping[str, set[str]] | None = None) -> None:
    """Refuse a store Bytewax would panic on, with one line saying which file and what to do.

    Checks each partition (SQLite's quick check, Bytewax's tables, its partition row), that
    no partition is missing, and, given `sources` (step id -> the partitions this flow's
    source reads), that the store holds no source position this flow cannot route (a store
    made for another prefix, or for more stream partitions): Bytewax stops on those too.
    """
    files = partition_files(store)
    metas = {path: _partition_meta(path) for path in files}
    counts = {count for _index, count in metas.values()}
    indexes = {index for index, _count in metas.values()}
    if len(counts) > 1 or (counts and indexes != set(range(max(counts)))):
        expected = max(counts)
        missing = sorted(set(range(expected)) - indexes)
        raise ConfigError(
            f"recovery.dir: {store} is incomplete (partitions {missing} of {expected} missing, "
            f"found {[p.name for p in files]}); restore them, or {START_OVER}"
        )
    for path in files:
        _check_sources(path, sources or {})
        _check_formats(path)


def _check_sources(path: Path, sources: Mapping[str, set[str]]) -> None:
    with _open(path, timeout_s=5.0) as conn:
        for step, parts in sources.items():
            rows = conn.execute("SELECT DISTINCT state_key FROM snaps WHERE step_id = ?", (step,))
            unknown = sorted({row[0] for row in rows} - parts)
            if unknown:
                raise ConfigError(
                    f"recovery.dir: {path} holds positions of {', '.join(unknown)} that this "
                    f"run does not read (it reads {', '.join(sorted(parts))}): a store made for "
                    f"another redis.prefix or source.partitions; {START_OVER}"
                )


#: Snapshot rows that are not an envelope of the current format (see `_check_formats`).
OTHER_FORMATS = """
SELECT step_id, ser_change FROM (
    SELECT step_id, ser_change, instr(substr(ser_change, 1, 64), :magic) AS at
    FROM snaps WHERE ser_change IS NOT NULL
)
WHERE at = 0 OR substr(ser_change, at + length(:magic), 2) <> :version
"""


def _check_formats(path: Path) -> None:
    """Refuse snapshots this release cannot resume from: bare pickles of the release before
    the snapshot format (or its state objects themselves), or a newer format.

    Envelopes of the current format are recognised in SQL by their first bytes (Bytewax
    pickles the step's bytes, so the envelope starts a few bytes into the row), so a large
    store is not unpickled row by row; only the other rows are (source positions, which are
    tuples and fine, and at most one offending row).
    """
    params = {"magic": snapshots.MAGIC, "version": struct.pack(">H", snapshots.FORMAT)}
    with _open(path, timeout_s=5.0) as conn:
        for step, blob in conn.execute(OTHER_FORMATS, params):
            try:
                value = pickle.loads(blob)  # Bytewax's pickle of a step's state: our own store
            except Exception as exc:  # a class the release that wrote it had, this one not
                reason: str | None = f"a snapshot this release cannot load ({exc!r})"
            else:
                reason = _format_problem(value)
            if reason is not None:
                what = "run the release that wrote it, or " if "newer" in reason else ""
                raise ConfigError(
                    f"recovery.dir: {path} holds {reason} in step {step}; {what}{START_OVER}"
                )


def _format_problem(value: object) -> str | None:
    """Why a stored state cannot be resumed from; None for a source position (a tuple)."""
    if isinstance(value, bytes | bytearray):
        return snapshots.problem(value)
    if type(value).__module__.split(".")[0] in {"state", "operators"}:
        return snapshots.problem(None)  # a state object: a release before the bytes too
    return None


def compact_store(store: Path) -> Compaction:
    """Compact every partition of `store`; StoreBusy if a worker holds one open.

    Partitions compacted before a busy one stay compacted: each file is consistent alone.
    """
    started = time.perf_counter()
    before = store_size(store)
    tombstones = rows = 0
    for path in partition_files(store):
        removed, kept = _compact_partition(path)
        tombstones += removed
        rows += kept
    return Compaction(tombstones, rows, before, store_size(store), time.perf_counter() - started)


def _compact_partition(path: Path) -> tuple[int, int]:
    """Delete the lone tombstones of one partition and rewrite it; (removed, rows kept)."""
    with _open(path, timeout_s=0.0) as conn:
        _leave_wal(conn, path)
        conn.execute("PRAGMA temp_store = MEMORY")  # VACUUM's copy never touches /tmp
        conn.execute("PRAGMA secure_delete = ON")
        conn.execute("BEGIN IMMEDIATE")
        removed = conn.execute(DELETE_LONE_TOMBSTONES).rowcount
        conn.execute("COMMIT")
        conn.execute("VACUUM")
        kept = int(conn.execute("SELECT COUNT(*) FROM snaps").fetchone()[0])
    return removed, kept


def _leave_wal(conn: sqlite3.Connection, path: Path) -> None:
    """Switch the file to a rollback journal: this checkpoints and deletes the write-ahead
    log, and SQLite allows it only to the file's sole connection, which is how a worker
    holding the store is detected. Bytewax switches back to WAL when it next opens it."""
    try:
        mode = conn.execute("PRAGMA journal_mode = DELETE").fetchone()[0]
    except sqlite3.OperationalError as exc:  # "database is locked"
        raise StoreBusy(f"{path} is open in another process ({exc})") from exc
    if str(mode).lower() != "delete":
        raise StoreBusy(f"{path} is open in another process (journal mode stays {mode})")


class StoreLock:
    """A `flock` on the store's lock file: shared while a worker runs on the store (several
    processes of one cluster may share a directory), exclusive while one compacts it. The
    kernel releases it when its process dies, so a crash leaves no stale lock."""

    def __init__(self, store: Path) -> None:
        self.store = store
        self._fd = os.open(store / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)

    def try_exclusive(self) -> bool:
        """Take it exclusive if nobody else holds it. A failed upgrade from shared may have
        dropped the shared lock (flock(2)): call `shared` again after one."""
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def shared(self) -> None:
        """Hold it shared, waiting for a compaction in progress to end."""
        fcntl.flock(self._fd, fcntl.LOCK_SH)

    def close(self) -> None:
        os.close(self._fd)


def take_for_run(store: Path, flow: Dataflow, workers: int = 0) -> StoreLock:
    """Before Bytewax opens the store: wait out any compaction, check the store (and, given
    this run's worker count, that it was written with the same), compact it unless another
    worker shares it, and hold it (shared) for the run."""
    lock = StoreLock(store)
    lock.shared()
    check_store(store, source_parts(flow))
    if lock.try_exclusive():
        _drop_unfinished_and_log(store)
        if workers:
            _rescale_and_log(store, workers)
        _compact_and_log(store)
    elif workers:
        refuse_other_workers(store, workers)
    lock.shared()
    return lock


def _drop_unfinished_and_log(store: Path) -> None:
    """Snapshots of epochs the last run did not finish would load after a later crash if
    the resumed run never rewrote their keys (`tailor.flows.rescale.drop_unfinished`)."""
    epoch = resume_epoch(store)
    dropped = drop_unfinished(store, epoch) if epoch is not None else 0
    if dropped:
        log.info("recovery store %s: %d snapshot(s) of unfinished epochs dropped", store, dropped)


def _rescale_and_log(store: Path, workers: int) -> None:
    done = rescale_store(store, workers)
    if done is not None:
        log.info("%s", done.describe(store))


def release_after_run(lock: StoreLock) -> None:
    """After a clean stop (Bytewax has closed the store): compact unless another worker
    shares the store, then let go of it."""
    if lock.try_exclusive():
        _compact_and_log(lock.store)
    lock.close()


def source_parts(flow: Dataflow) -> dict[str, set[str]]:
    """Step id -> partition names of each of the flow's partitioned (snapshotted) sources."""
    found: dict[str, set[str]] = {}
    for step in flow.substeps:
        source = getattr(step, "source", None)
        if isinstance(source, FixedPartitionedSource):
            found[step.step_id] = set(source.list_parts())
    return found


def _compact_and_log(store: Path) -> Compaction | None:
    """Compact `store` and log it; skip (with a warning) a store another process has open."""
    try:
        done = compact_store(store)
    except StoreBusy as exc:
        log.warning("recovery store not compacted: %s", exc)
        return None
    log.info("%s", done.describe(store))
    return done


#: What `store_command` says an action it could not do was.
DONE = {"compact": "compacted", "rescale": "rescaled"}


def store_command(config: Config, action: str) -> tuple[str, int]:
    """`tailor store check|compact|rescale`: (what to print, exit code). Run compact and
    rescale with the workers stopped: a store a worker holds open is refused, exit 1."""
    store = store_path(config)
    if not partition_files(store):
        raise ConfigError(f"recovery.dir: no recovery store at {store}")
    lock = StoreLock(store)
    try:
        if action == "check":
            lock.shared()  # wait out a compaction; a running worker is fine
            check_store(store)
            return f"recovery store {store}: {len(partition_files(store))} partition(s), intact", 0
        if not lock.try_exclusive():
            return f"recovery store {store} not {DONE[action]}: a worker is running on it", 1
        check_store(store)
        if action == "rescale":
            done = rescale_store(store, config.workers)
            if done is None:
                return f"recovery store {store}: already for {config.workers} worker(s)", 0
            return done.describe(store), 0
        return compact_store(store).describe(store), 0
    except StoreBusy as exc:
        return f"recovery store {store} not {DONE[action]}: {exc}; stop the worker first", 1
    finally:
        lock.close()
