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
from runherald.errors import BrokerUnavailable

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

    return run_dev(_settings(args), broker_port=args.broker_port, external_broker=bool(args.broker))


def cmd_worker(args: argparse.Namespace) -> int:
    from runherald.worker import run_worker

    return run_worker(_settings(args))


def _read_runs(path: str | None) -> list[dict[str, Any]]:
    """Run dicts from a file, or standard input for None or "-" (one object, a JSON array, or NDJSON)."""
    from runherald.publish import parse_runs

    if path in (None, "-"):
        return parse_runs(sys.stdin.buffer.read())
    with open(path, "rb") as handle:
        return parse_runs(handle.read())


def cmd_publish(args: argparse.Namespace) -> int:
    from runherald.publish import PublishError, publish_sync

    try:
        runs = _read_runs(args.file)
        keys = publish_sync(runs, _settings(args))
    except (OSError, PublishError) as exc:
        print(f"runherald publish: {exc}", file=sys.stderr)
        return 2
    except BrokerUnavailable as exc:
        print(f"runherald publish: {exc}", file=sys.stderr)
        return 1
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


def _print_table(rows: Sequence[Sequence[str]]) -> None:
    """Columns padded to their widest cell; the last column (free text) is not padded."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[-1])


def cmd_dead_letter_list(args: argparse.Namespace) -> int:
    import asyncio

    from runherald.deadletter import read_dead_letters

    settings = _settings(args)
    try:
        letters = asyncio.run(read_dead_letters(settings, args.limit))
    except Exception as exc:
        topic = settings.topic("dead-letter")
        print(f"runherald dead-letter list: cannot read {topic}: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps([letter.to_json() for letter in letters], indent=2, sort_keys=True))
        return 0
    if not letters:
        print(f"{settings.topic('dead-letter')}: no records")
        return 0
    rows = [("ID", "TIME", "STAGE", "SOURCE", "REASON")]
    for letter in letters:
        source = " ".join(f"{key}={value}" for key, value in sorted(letter.source.items()))
        if letter.key:
            source = f"{letter.key} {source}".strip()
        rows.append((letter.id, letter.time, letter.stage, source, letter.reason.replace("\n", " ")))
    _print_table(rows)
    return 0


def cmd_dead_letter_replay(args: argparse.Namespace) -> int:
    import asyncio

    from runherald.deadletter import read_dead_letters, replay

    settings = _settings(args)
    try:
        letters = asyncio.run(read_dead_letters(settings))
        by_id = {letter.id: letter for letter in letters}
        wanted = letters if args.all else [by_id[i] for i in args.id if i in by_id]
        missing = [] if args.all else [i for i in args.id if i not in by_id]
        results = asyncio.run(replay(settings, wanted))
    except Exception as exc:
        print(f"runherald dead-letter replay: {exc}", file=sys.stderr)
        return 1
    for record_id in missing:
        print(f"not replayed {record_id}: no such record on {settings.topic('dead-letter')}")
    for result in results:
        print(f"{'replayed' if result.replayed else 'not replayed'} {result.id}: {result.detail}")
    if not results and not missing:
        print(f"{settings.topic('dead-letter')}: no records")
    return 0 if not missing and all(result.replayed for result in results) else 1


def cmd_render(args: argparse.Namespace) -> int:
    from runherald.publish import PublishError

    try:
        runs = _read_runs(args.file)
    except (OSError, PublishError) as exc:
        print(f"runherald render: {exc}", file=sys.stderr)
        return 2
    previews = [item for run in runs for item in dry_run(run, _settings(args), args.notification)]
    if args.notification and not previews:
        print(f"runherald render: no notification named {args.notification!r}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(previews, indent=2, sort_keys=True))
        return 0
    for item in previews:
        print_preview(item)
    if not previews:
        print("no notifications in the run")
    return 0


def dry_run(run: dict[str, Any], settings: Settings, only: str | None = None) -> list[dict[str, Any]]:
    """Per notification of a run: would it be sent now (and why), and what each channel would get."""
    from runherald import rules
    from runherald.notifiers import NotifierSettings
    from runherald.templating import render_preview

    notifier_settings = NotifierSettings.from_settings(settings)
    meta = run.get("metadata") if isinstance(run.get("metadata"), dict) else {}
    spec = run.get("spec") if isinstance(run.get("spec"), dict) else {}
    notifications = [n for n in (spec or {}).get("notifications") or [] if isinstance(n, dict)]
    duplicate_names = rules.check_unique_names(notifications)
    redacted = rules.redact_run(run)  # receivers see the run with its secret_params REDACTED
    previews = []
    for notification in notifications:
        name = str(notification.get("name") or "")
        if only is not None and name != only:
            continue
        if duplicate_names:
            decision = rules.Decision(False, duplicate_names)
        else:
            decision = rules.evaluate(
                run,
                notification,
                condition_error_policy=settings.condition_error_policy,
                notify_iterations=settings.notify_iterations,
            )
        previews.append(
            {
                "run": f"{(meta or {}).get('project')}/{(meta or {}).get('uid')}",
                "name": name,
                "kind": str(notification.get("kind") or "slack"),
                "send": decision.send,
                "reason": decision.reason,
                "preview": render_preview(redacted, notification, notifier_settings),
            }
        )
    return previews


def print_preview(item: dict[str, Any]) -> None:
    """One notification's dry run as text: the decision, then what its own channel would get."""
    preview = item["preview"]
    verdict = "would be sent" if item["send"] else "would NOT be sent"
    name = item["name"] or '""'
    print(f"== {item['run']} {name} ({item['kind']}): {verdict}: {item['reason']}")
    print(f"message: {preview['message']}")
    print(f"severity: {preview['severity']}")
    kind = item["kind"]
    if kind == "slack":
        print("slack blocks:")
        print(json.dumps(preview["slack"]["blocks"], indent=2))
    elif kind == "webhook":
        print(f"webhook body ({preview['webhook']['content_type']}):")
        print(preview["webhook"]["body"])
    elif kind == "mail":
        print(f"mail subject: {preview['mail']['subject']}")
        print("mail text:")
        print(preview["mail"]["text"])
    elif kind == "console":
        print("console:")
        print(preview["console"])
    else:
        print(f"kind {kind!r} has no channel preview")
    print()


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

    dead_letter = sub.add_parser("dead-letter", help="list or replay the dead-letter topic's records")
    dl_sub = dead_letter.add_subparsers(dest="dead_letter_command", required=True, metavar="ACTION")
    dl_list = dl_sub.add_parser("list", help="one line per record: id, time, stage, source, reason")
    dl_list.add_argument("--json", action="store_true", help="print the records as JSON")
    dl_list.add_argument("--limit", type=int, metavar="N", help="only the N most recent records")
    dl_list.add_argument("--broker", help="kafka://host:port (default $RUNHERALD_BROKER)")
    dl_list.set_defaults(func=cmd_dead_letter_list)
    dl_replay = dl_sub.add_parser(
        "replay", help="re-publish failed deliveries (sent again despite `error`) and dead-lettered runs"
    )
    which = dl_replay.add_mutually_exclusive_group(required=True)
    which.add_argument("--id", action="append", metavar="ID", help="a record id from `list` (repeatable)")
    which.add_argument("--all", action="store_true", help="every record that can be replayed")
    dl_replay.add_argument("--broker", help="kafka://host:port (default $RUNHERALD_BROKER)")
    dl_replay.set_defaults(func=cmd_dead_letter_replay)

    render = sub.add_parser(
        "render", help="dry run: what each notification of a run would send, and whether; sends nothing"
    )
    render.add_argument("file", nargs="?", help="a run dict file, or - (default) for standard input")
    render.add_argument("--notification", metavar="NAME", help="only the notification with this name")
    render.add_argument("--json", action="store_true", help="print the decisions and previews as JSON")
    render.set_defaults(func=cmd_render)

    bench = sub.add_parser(
        "bench",
        help="benchmark the pipeline on the embedded broker (see `runherald bench --help`)",
        add_help=False,
    )
    bench.add_argument("bench_args", nargs=argparse.REMAINDER)
    bench.set_defaults(func=cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["bench"]:
        # The bench has its own options; hand them over untouched (`runherald bench --runs 10`).
        from runherald.bench import main as bench_main

        return bench_main(args_list[1:])
    parser = build_parser()
    args = parser.parse_args(args_list)
    result: int = args.func(args)
    return result


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
