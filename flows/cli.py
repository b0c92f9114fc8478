"""The `tailor` command: run, demo, produce, inspect, segments, resegment, forget, block, store,
evaluate, serve.

Only argument parsing and dispatch live here; each command's work is in its own module.
Exit codes: 0 done, 1 not found / failed, 2 bad configuration or usage; a failure is one line
on stderr (`tailor.flows.cli_errors`).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import redis

from tailor.flows.cli_errors import explain, one_line
from tailor.flows.cli_parser import build_parser
from tailor.flows.config import Config, ConfigError, load_config
from tailor.operators.redis.redact import scrub


def _require_url(config: Config) -> str:
    if not config.redis_url:
        raise ConfigError("redis.url: not set (set REDIS_URL or redis.url in the config file)")
    return config.redis_url


def _cmd_run(config: Config, args: argparse.Namespace) -> int:
    _require_url(config)  # then the worker waits for Redis and checks it (tailor.flows.preflight)
    from tailor.flows.runner import run_worker

    if args.until_drained:
        config = replace(config, source=replace(config.source, stop_when_drained=True))
    run_worker(config, args.replay, serve_metrics=True)
    return 0


def _cmd_demo(config: Config, args: argparse.Namespace) -> int:
    from tailor.flows.demo import run_demo

    return run_demo(config, users=args.users, follow=args.follow, reset=args.reset)


def _cmd_produce(config: Config, args: argparse.Namespace) -> int:
    from tailor.flows.produce import produce

    count = produce(
        _require_url(config),
        args.file,
        prefix=config.prefix,
        partitions=config.source.partitions,
        adapter=args.adapter,
        progress=not args.no_progress,
        limit=args.limit,
        workers=config.workers,
    )
    print(f"published {count} events to {config.prefix}:events:*")
    return 0


@contextmanager
def _reader(config: Config) -> Iterator[tuple[redis.Redis, str]]:
    """A client and prefix to read results: the configured Redis, else the demo's data."""
    from tailor.flows.demo import DEMO_PREFIX
    from tailor.flows.embedded import DEMO_DB, EmbeddedRedis

    embedded = None
    url, prefix = config.redis_url, config.prefix
    if not url:
        if not DEMO_DB.exists():
            raise ConfigError("redis.url: not set, and no demo data in .tailor/ to read")
        embedded = EmbeddedRedis()
        url = embedded.url
        if prefix == "tailor":  # the demo's data, written under the demo's own prefix
            prefix = DEMO_PREFIX
    client = redis.Redis.from_url(url)
    try:
        yield client, prefix
    finally:
        client.close()
        if embedded is not None:
            embedded.close()


def _cmd_inspect(config: Config, args: argparse.Namespace) -> int:
    from tailor.flows.forget import check_id_mode
    from tailor.flows.lookup import read_user, render
    from tailor.operators.pseudonym import pseudonym

    secret = config.pseudonym_secret()
    user = pseudonym(secret, args.user) if secret else args.user
    with _reader(config) as (client, prefix):
        found = read_user(client, prefix, user)
        if found is None:  # "no profile" must not hide a lookup under the wrong ids
            check_id_mode(client, prefix, secret, command="inspect")
    if found is None:
        print(f"no profile for user {args.user!r} under prefix {prefix!r}", file=sys.stderr)
        return 1
    print(render(found))
    return 0


def _cmd_segments(config: Config, args: argparse.Namespace) -> int:
    from tailor.flows.segments_table import as_json, quality_line, read_rows, render_table

    with _reader(config) as (client, prefix):
        rows = read_rows(client, prefix)
        quality = quality_line(client, prefix)
        if args.plot is not None and rows:
            from tailor.flows.segment_plots import plot_segments
            from tailor.flows.segments_table import read_history, read_model

            model = read_model(client, prefix)
            segments = model.get("segments", {})
            zscores = {segment: info.get("zscores", {}) for segment, info in segments.items()}
            names = {row.segment: row.name for row in rows}
            history = read_history(client, prefix)
            plot_segments(history, zscores, names, args.plot, model.get("features", ()))
    if args.json:
        print(as_json(rows).decode())
        return 0
    if not rows:
        print(f"no segments under prefix {prefix!r} yet", file=sys.stderr)
        return 1
    print("\n".join([*([quality] if quality else []), *render_table(rows)]))
    return 0


def _cmd_resegment(config: Config, args: argparse.Namespace) -> int:
    from tailor.flows.resegment import as_json, render, resegment
    from tailor.flows.worker import model_params

    params = model_params(config)
    with _reader(config) as (client, prefix):
        result = resegment(client, prefix, params, plot=args.plot)
    if result is None:
        print(
            f"fewer than two live segments or 40 users in them under prefix {prefix!r}: "
            "nothing to check",
            file=sys.stderr,
        )
        return 1
    print(as_json(result).decode() if args.json else "\n".join(render(result)))
    return 0


def _cmd_forget(config: Config, args: argparse.Namespace) -> int:
    from tailor.flows.forget import forget

    client = redis.Redis.from_url(_require_url(config))
    counts = forget(
        client,
        config.prefix,
        config.source.partitions,
        args.user,
        workers=config.workers,
        opt_out=args.opt_out,
        secret=config.pseudonym_secret(),
    )
    print(
        f"erasure of {args.user!r} requested from the worker; deleted "
        f"{counts['input_entries']} input events and {counts['dead_letters']} dead letters"
        + ("; future events will be ignored" if args.opt_out else "")
    )
    return 0


def _cmd_block(config: Config, args: argparse.Namespace) -> int:
    from tailor.flows.block import block

    client = redis.Redis.from_url(_require_url(config))
    try:
        rewritten = block(client, config.prefix, args.item, blocked=not args.unblock)
    finally:
        client.close()
    if args.unblock:
        print(f"item {args.item!r} unblocked")
    else:
        print(f"item {args.item!r} blocked; removed from {rewritten} stored lists")
    return 0


def _cmd_acl(config: Config, args: argparse.Namespace) -> int:
    """What an operator pastes into redis-cli: the worker's permissions on this prefix, plus
    `scan` for the CLI commands; PASSWORD is theirs to fill in."""
    from tailor.operators.redis.permissions import acl_rules

    print(
        " ".join(["ACL SETUSER", args.user, "on", ">PASSWORD", *acl_rules(config.prefix)]), "+scan"
    )
    return 0


def _cmd_store(config: Config, args: argparse.Namespace) -> int:
    from tailor.flows.store import store_command

    message, code = store_command(config, args.action)
    print(message, file=sys.stderr if code else sys.stdout)
    return code


def _cmd_evaluate(config: Config, args: argparse.Namespace) -> int:
    from dataclasses import asdict

    import orjson

    from tailor.flows.evaluate import evaluate, load_interactions, parse_models, settings_of, table

    try:
        models = parse_models(args.models)
    except ValueError as exc:
        raise ConfigError(f"--models: {exc}") from exc
    interactions = load_interactions(args.data, args.adapter, settings_of(config))
    if not interactions:
        print("no interactions with an item in the data: nothing to evaluate", file=sys.stderr)
        return 1
    if args.variants:
        return _evaluate_variants(config, args, interactions)
    results = evaluate(config, interactions, models, args.k, args.jobs)
    if args.json:
        print(orjson.dumps([asdict(r) for r in results]).decode())
    else:
        print(table(results, ", ".join(p.name for p in args.data), args.k))
    return 0


def _evaluate_variants(config: Config, args: argparse.Namespace, interactions: list[Any]) -> int:
    from dataclasses import asdict

    import orjson

    from tailor.flows.evaluate import parse_models
    from tailor.flows.evaluate_variants import ab_replay, render

    try:
        pair = parse_models(args.variants)
    except ValueError as exc:
        raise ConfigError(f"--variants: {exc}") from exc
    if len(pair) != 2:
        raise ConfigError("--variants: name exactly two models, A,B")
    result = ab_replay(config, interactions, (pair[0], pair[1]), args.k)
    print(orjson.dumps(asdict(result)).decode() if args.json else render(result, args.k))
    return 0


def _cmd_serve(config: Config, args: argparse.Namespace) -> int:
    _require_url(config)
    from tailor.flows.serve.command import serve

    serve(config, args.host, args.port)
    return 0


COMMANDS = {
    "run": _cmd_run,
    "demo": _cmd_demo,
    "produce": _cmd_produce,
    "inspect": _cmd_inspect,
    "segments": _cmd_segments,
    "resegment": _cmd_resegment,
    "forget": _cmd_forget,
    "block": _cmd_block,
    "store": _cmd_store,
    "acl": _cmd_acl,
    "evaluate": _cmd_evaluate,
    "serve": _cmd_serve,
}


def pin_hash_seed() -> None:
    """Re-run this command with a fixed string-hash seed unless it already has one.

    Python randomises `hash(str)` per process, so iterating a set of strings (River computes
    some distances over key sets) can change float summation order between runs; a replay
    must give byte-identical Redis state, so the worker pins the seed before anything runs.
    """
    if os.environ.get("PYTHONHASHSEED") == "0":
        return
    os.environ["PYTHONHASHSEED"] = "0"
    os.execv(sys.executable, [sys.executable, "-m", "tailor.flows.cli", *sys.argv[1:]])


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None:
        pin_hash_seed()
    args = build_parser(__doc__ or "").parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    urls = [os.environ.get("REDIS_URL", ""), os.environ.get("TAILOR_REDIS_URL", "")]
    try:
        config = load_config(args.config)
        urls.append(config.redis_url)
        return COMMANDS[args.command](config, args)
    except BrokenPipeError:  # `tailor inspect u | head`: the reader left, not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (Exception, KeyboardInterrupt) as exc:
        failure = explain(exc)
        if failure is None:
            raise  # a bug: its traceback is what the report needs (tailor.flows.cli_errors)
        # the message may quote a server's reply or a URL: never its password
        print(one_line(f"tailor: {scrub(failure.message, *urls)}"), file=sys.stderr)
        return failure.code


if __name__ == "__main__":
    sys.exit(main())
