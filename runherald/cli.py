"""The ``runherald`` command line."""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

from runherald.config import Settings

DEFAULT_API = "http://127.0.0.1:6066"


def _settings(args: argparse.Namespace, **extra: Any) -> Settings:
    try:
        return Settings.from_env(
            broker=getattr(args, "broker", None), web_port=getattr(args, "web_port", None), **extra
        )
    except ValueError as exc:
        raise SystemExit(f"runherald: bad setting: {exc}") from None


def cmd_dev(args: argparse.Namespace) -> int:
    from runherald.worker import run_dev

    settings = _settings(args)
    if args.broker:
        settings.extra["external_broker"] = True
    return run_dev(settings, broker_port=args.broker_port)


def cmd_worker(args: argparse.Namespace) -> int:
    from runherald.worker import run_worker

    return run_worker(_settings(args))


def cmd_publish(args: argparse.Namespace) -> int:
    from runherald.publish import PublishError, parse_runs, publish_sync

    try:
        if args.file in (None, "-"):
            text = sys.stdin.buffer.read()
        else:
            with open(args.file, "rb") as handle:
                text = handle.read()
        runs = parse_runs(text)
        keys = publish_sync(runs, _settings(args))
    except (OSError, PublishError) as exc:
        print(f"runherald publish: {exc}", file=sys.stderr)
        return 2
    for key in keys:
        print(key)
    return 0


def _api_get(api: str, path: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(api.rstrip("/") + path, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.loads(exc.read())
        except ValueError:
            return exc.code, {"error": str(exc)}


def cmd_status(args: argparse.Namespace) -> int:
    if args.run.count("/") != 1:
        print("runherald status: expected PROJECT/UID", file=sys.stderr)
        return 2
    try:
        code, body = _api_get(args.api, f"/api/v1/runs/{args.run}/notifications")
    except (urllib.error.URLError, OSError) as exc:
        print(f"runherald status: cannot reach the API at {args.api}: {exc}", file=sys.stderr)
        return 1
    if code != 200:
        print(f"runherald status: {body.get('error', body)}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(body, indent=2, sort_keys=True))
        return 0
    if not body:
        print(f"{args.run}: no notifications recorded")
        return 0
    rows = [("NAME", "STATE", "STATUS", "ATTEMPTS", "SENT_TIME", "REASON")]
    for name, item in sorted(body.items()):
        for state, per_state in sorted(item.get("states", {}).items()):
            rows.append(
                (
                    name or '""',
                    state,
                    per_state.get("status") or "",
                    str(per_state.get("attempts", 0)),
                    per_state.get("sent_time") or "",
                    (per_state.get("reason") or "").replace("\n", " "),
                )
            )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[-1])
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from runherald.bench import main as bench_main

    return bench_main(args.bench_args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="runherald",
        description="Run-state notifications on Kafka: evaluate, send, record. Settings also come from "
        "RUNHERALD_* environment variables (e.g. RUNHERALD_BROKER=kafka://host:9092).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    dev = sub.add_parser("dev", help="run the embedded broker, a worker and the API in the foreground")
    dev.add_argument("--web-port", type=int, help="HTTP API port (default 6066)")
    dev.add_argument("--broker-port", type=int, help="embedded broker port (default 9092, or a free one)")
    dev.add_argument("--broker", help="use this Kafka (kafka://host:port) instead of the embedded broker")
    dev.set_defaults(func=cmd_dev)

    worker = sub.add_parser("worker", help="run one pipeline worker against a broker")
    worker.add_argument("--broker", help="kafka://host:port (default $RUNHERALD_BROKER)")
    worker.add_argument("--web-port", type=int, help="HTTP API port (default 6066; one per worker on a host)")
    worker.set_defaults(func=cmd_worker)

    publish = sub.add_parser("publish", help="publish run dicts: one object, a JSON array, or NDJSON")
    publish.add_argument("file", nargs="?", help="a file, or - (default) for standard input")
    publish.add_argument("--broker", help="kafka://host:port (default $RUNHERALD_BROKER)")
    publish.set_defaults(func=cmd_publish)

    status = sub.add_parser("status", help="show a run's notification statuses")
    status.add_argument("run", metavar="PROJECT/UID")
    status.add_argument("--json", action="store_true", help="print the API's JSON")
    status.add_argument("--api", default=os.environ.get("RUNHERALD_API", DEFAULT_API), help="API base URL")
    status.set_defaults(func=cmd_status)

    bench = sub.add_parser(
        "bench",
        help="benchmark the pipeline on the embedded broker (see `runherald bench -- --help`)",
        add_help=False,
    )
    bench.add_argument("bench_args", nargs=argparse.REMAINDER)
    bench.set_defaults(func=cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
