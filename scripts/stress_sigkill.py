"""Crash stress (not in CI): two workers, each SIGKILLed and restarted once per try, runs posted through
their APIs; prints per try what was lost, sent twice, and left `pending` in the ledger.

    .venv/bin/python scripts/stress_sigkill.py [--tries 10] [--runs 1500] [--points plain,after-send,...]

Kill points (see runherald.faults): ``plain`` kills from outside at a moment in the stream; the others
make the worker kill itself at that point in its code (``before-send``, ``after-send``,
``after-record``, ``evaluated``, ``rebalance``). Tries cycle through the points given.

Per try it prints: lost (runs the receiver never got), duplicates (receipts beyond one per delivery,
in total and per kill), stuck (deliveries whose ledger entry was not `sent` in either worker's API 30 s
after the last worker was ready), and the same count read from the status topic itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runherald.broker import EmbeddedBroker  # noqa: E402
from runherald.testing.webhook import WebhookReceiver  # noqa: E402
from runherald.testing.worker import WorkerProcess, unique  # noqa: E402
from tests.pipeline.harness import fast_worker, run_dict, webhook  # noqa: E402

CONVERGE_WITHIN = 30.0


async def post_runs(session: aiohttp.ClientSession, workers: list[WorkerProcess], runs: list[Any]) -> None:
    """POST a batch to the first worker whose API answers; a killed worker's turn goes to the other."""
    for attempt in range(200):
        for worker in workers[attempt % 2 :] + workers[: attempt % 2]:
            if worker.process is None or worker.process.poll() is not None:
                continue
            try:
                async with session.post(worker.api + "/api/v1/runs", data=orjson.dumps(runs)) as reply:
                    if reply.status == 202:
                        return
            except (TimeoutError, aiohttp.ClientError, OSError):
                pass
        await asyncio.sleep(0.1)
    raise RuntimeError("no worker accepted a batch of runs for 20 s")


async def read_status(worker: WorkerProcess) -> list[tuple[int, int, bytes | None, bytes | None]]:
    """Every record of the status topic: (partition, offset, key, value), in order per partition."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    settings = worker.settings
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers, enable_auto_commit=False)
    await consumer.start()
    try:
        topic = settings.topic("status")
        await consumer._client.force_metadata_update()
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        found = []
        while True:
            batches = await consumer.getmany(timeout_ms=500)
            if not any(batches.values()):
                return found
            for tp, messages in batches.items():
                found.extend((tp.partition, m.offset, m.key, m.value) for m in messages)
    finally:
        await consumer.stop()


def alive(worker: WorkerProcess) -> bool:
    return worker.alive


def restart(worker: WorkerProcess) -> WorkerProcess:
    """The same worker started again, without any fault armed."""
    fresh = fast_worker(worker.broker_url, worker.prefix, worker.group, worker.log_dir)
    fresh.web_port = worker.web_port
    return fresh.start()


async def one_try(
    number: int, point: str, broker: EmbeddedBroker, receiver: WebhookReceiver, runs: int, logs: Path
) -> dict[str, Any]:
    prefix, group, project = unique("s") + ".", unique("g"), unique("p")
    path = f"/try{number}"
    # Who dies how. plain: A is killed from outside at a quarter of the runs and B at a half.
    # rebalance: A is killed from outside at a quarter; B kills itself in the rebalance that follows.
    # A point in the code: A kills itself at its (runs/10)th time there, B at its (runs/4)th.
    external = {"plain": {0: runs // 4, 1: runs // 2}, "rebalance": {0: runs // 4}}.get(point, {})
    if point == "plain":
        faults: list[dict[str, str]] = [{}, {}]
    elif point == "rebalance":
        faults = [{}, {"RUNHERALD_FAULT_POINT": "rebalance@2"}]
    else:
        faults = [{"RUNHERALD_FAULT_POINT": f"{point}@{n}"} for n in (max(1, runs // 10), max(1, runs // 4))]
    workers = [fast_worker(broker.url, prefix, group, logs, **env).start() for env in faults]
    kills = 0
    died_at: dict[int, int] = {}
    try:
        # The receiver runs on this event loop: blocking calls go to a thread, or it stops answering.
        await asyncio.gather(*(asyncio.to_thread(w.wait_ready, 90) for w in workers))
        uids = [f"u{i:05d}" for i in range(runs)]
        batch = 10
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            for start in range(0, runs, batch):
                chunk = [
                    run_dict(project, uid, "completed", [webhook("hook", receiver.url(path))])
                    for uid in uids[start : start + batch]
                ]
                await post_runs(session, workers, chunk)
                await asyncio.sleep(0.01)
                done = start + batch
                for index, worker in enumerate(workers):
                    if index in external and index not in died_at and done >= external[index]:
                        await asyncio.to_thread(worker.kill)
                    if not alive(worker) and index not in died_at:
                        died_at[index] = done
                        kills += 1
                    # A dead worker is started again (without the fault) an eighth of the runs later.
                    if not alive(worker) and done >= died_at[index] + runs // 8:
                        workers[index] = restart(worker)
        # Whatever is dead now (or dies while the others get ready: a worker armed to die in a
        # rebalance may do so in the one a restart causes) is started again, until both are ready.
        while True:
            for index, worker in enumerate(workers):
                if not alive(worker):
                    if index not in died_at:
                        died_at[index] = runs
                        kills += 1
                    workers[index] = restart(worker)
            try:
                await asyncio.gather(*(asyncio.to_thread(w.wait_ready, 90) for w in workers))
            except RuntimeError:  # one exited while we waited
                continue
            if all(alive(w) for w in workers):
                break
        ready_at = time.monotonic()

        def delivered() -> Counter[str]:
            return Counter(r.json()["runs"][0]["metadata"]["uid"] for r in receiver.requests_to(path))

        with contextlib.suppress(TimeoutError):
            await receiver.wait_until(lambda: len(delivered()) >= runs, CONVERGE_WITHIN)
        lost = runs - len(delivered())
        keys = Counter(r.headers.get("Idempotency-Key") for r in receiver.requests_to(path))
        duplicates = sum(n - 1 for n in keys.values())

        async def entry_status(session: aiohttp.ClientSession, uid: str) -> str:
            statuses = []
            for worker in workers:
                url = f"{worker.api}/api/v1/runs/{project}/{uid}/notifications"
                try:
                    async with session.get(url) as reply:
                        body = await reply.json() if reply.status == 200 else {}
                except (TimeoutError, aiohttp.ClientError, OSError):
                    body = {}
                statuses.append((body.get("hook") or {}).get("status", "missing"))
            return "sent" if all(s == "sent" for s in statuses) else ",".join(statuses)

        stuck: dict[str, str] = {}
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            while True:
                results = await asyncio.gather(*(entry_status(session, uid) for uid in uids))
                stuck = {uid: s for uid, s in zip(uids, results, strict=True) if s != "sent"}
                if not stuck or time.monotonic() > ready_at + CONVERGE_WITHIN:
                    break
                await asyncio.sleep(1)
        topic_stuck = 0
        latest: dict[bytes, bytes] = {}
        history: dict[bytes, list[str]] = {}
        for partition, offset, key, value in await read_status(workers[0]):
            if key is not None and value is not None:
                latest[key] = value
                history.setdefault(key, []).append(
                    f"[{partition}]@{offset}:"
                    + ";".join(
                        f"{e.get('status')}/a{e.get('attempts')}"
                        + (
                            f" retry={e.get('retry')} in {float(e['next_attempt_at']) - time.time():.1f}s"
                            if e.get("next_attempt_at")
                            else ""
                        )
                        + (f" ({e.get('reason')})" if e.get("reason") else "")
                        for e in orjson.loads(value)["deliveries"].values()
                    )
                )
        for uid in list(stuck)[:3]:
            print(f"    {uid}: status topic history {history.get(f'{project}/{uid}'.encode())}", flush=True)
        for uid in uids:
            raw = latest.get(f"{project}/{uid}".encode())
            entries = orjson.loads(raw)["deliveries"].values() if raw else []
            if not any(e.get("status") == "sent" for e in entries):
                topic_stuck += 1
        return {
            "try": number,
            "point": point,
            "kills": kills,
            "lost": lost,
            "duplicates": duplicates,
            "per_kill": duplicates / max(1, kills),
            "stuck_api": len(stuck),
            "stuck_topic": topic_stuck,
            "examples": list(stuck.items())[:3],
        }
    finally:
        await asyncio.gather(*(asyncio.to_thread(w.stop) for w in workers))


async def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tries", type=int, default=10)
    parser.add_argument("--runs", type=int, default=1500)
    parser.add_argument(
        "--points",
        default="plain,before-send,after-send,after-record,rebalance",
        help="comma-separated kill points, cycled through the tries",
    )
    parser.add_argument("--logs", default="", help="keep worker logs here (default: a temporary folder)")
    args = parser.parse_args()
    points = [p.strip() for p in args.points.split(",") if p.strip()]
    logs = Path(args.logs or tempfile.mkdtemp(prefix="runherald-stress-"))
    logs.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - once, before anything runs
    print(f"worker logs in {logs}")
    print(
        f"{'try':>3} {'point':<13} {'kills':>5} {'lost':>4} {'dups':>5} {'dups/kill':>9} {'stuck(api)':>10} "
        f"{'stuck(topic)':>12}"
    )
    failed = False
    with EmbeddedBroker(log_path=str(logs / "tansu.log")) as broker:
        async with WebhookReceiver() as receiver:
            for number in range(1, args.tries + 1):
                point = points[(number - 1) % len(points)]
                result = await one_try(number, point, broker, receiver, args.runs, logs)
                print(
                    f"{result['try']:>3} {result['point']:<13} {result['kills']:>5} {result['lost']:>4} "
                    f"{result['duplicates']:>5} {result['per_kill']:>9.1f} {result['stuck_api']:>10} "
                    f"{result['stuck_topic']:>12}",
                    flush=True,
                )
                if result["examples"]:
                    print(f"    e.g. {result['examples']}", flush=True)
                failed = failed or bool(result["lost"] or result["stuck_api"] or result["stuck_topic"])
                with contextlib.suppress(Exception):
                    receiver.requests.clear()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
