"""Run one pipeline worker (faust app + HTTP API + ledger view), or the whole embedded stack."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import sys
import tempfile
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import faust
import mode
import orjson
from aiohttp import web
from aiokafka.errors import KafkaError

from runherald.api import MalformedRequestLog, create_api
from runherald.auth import TokenTable, api_tokens
from runherald.broker import EMBEDDED_FETCH_WAIT_MS, EmbeddedBroker, free_port
from runherald.config import Settings
from runherald.connect import quiet_kafka_log
from runherald.kafka_clients import Cluster, Plan, plan_for, probe_cluster
from runherald.ledger_projection import LedgerProjection
from runherald.notifiers import Notifiers, NotifierSettings
from runherald.publish import Publisher
from runherald.rules import redact_run
from runherald.sealing import (
    PRIVATE_KEYS_ENV,
    PUBLIC_KEY_ENV,
    SealKeyError,
    SealKeys,
    generate_key_pair,
    parse_private_keys,
    seal_keys,
    use_keys,
)
from runherald.secrets import SecretLogFilter
from runherald.streams.app import Pipeline, create_pipeline
from runherald.streams.run_feed import RunFeed
from runherald.topics import ensure_topics
from runherald.view import LedgerView

log = logging.getLogger("runherald.worker")


class ApiService(mode.Service):
    """The HTTP API and the ledger view, started and stopped with the faust worker; on stop it also
    closes the notifiers the pipeline sends through (their HTTP sessions)."""

    def __init__(
        self,
        pipeline: Pipeline,
        *,
        notifiers: Notifiers | None = None,
        tokens: TokenTable | None = None,
        announce: str = "",
        runtime: str = "",
        kafka_line: str = "",
        idempotent: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.pipeline = pipeline
        self.notifiers = notifiers
        self.tokens = tokens
        self.runtime = runtime
        self.kafka_line = kafka_line
        self.settings = pipeline.settings
        self.announce = announce
        self.projection = LedgerProjection.for_settings(self.settings)
        self.view = LedgerView(self.settings, self.projection.add if self.projection else None)
        self.feed = RunFeed(self.settings)  # live subscriptions' shared reader: starts with the first
        self.publisher = Publisher(self.settings, create_topics=False, idempotent=idempotent)
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.settings.web_host}:{self.settings.web_port}"

    def _lookup(self, key: str) -> bytes | None:
        """A run's ledger record: this worker's own for the partitions it owns (fresh), else the view's."""
        value = self.pipeline.local_record(key.encode())
        return value if value is not None else self.view.record(key)

    async def _run_lookup(self, record: dict[str, Any]) -> dict[str, Any] | None:
        """The run as last accepted, read back from the runs topic, secrets redacted."""
        offset = (record.get("run") or {}).get("offset")
        if not offset:
            return None
        try:
            raw = await self.pipeline.run_fetcher.fetch(int(offset[0]), int(offset[1]))
        except (TimeoutError, KafkaError) as exc:
            log.warning("cannot read run %s/%s back: %s", record.get("project"), record.get("uid"), exc)
            return None
        return redact_run(orjson.loads(raw), parsed_json=True)

    def _health(self) -> dict[str, Any]:
        app = self.pipeline.app
        try:
            assigned = len(app.consumer.assignment())
        except Exception:
            assigned = 0
        ready = self.view.caught_up.is_set()
        alerts = self.pipeline.alerts
        loaded = alerts.ready.is_set()
        config = alerts.config
        return {
            "status": "ok" if ready and loaded else "starting",
            "ledger_view_caught_up": ready,
            "alert_configuration_loaded": loaded,
            "alert_rules": len(config.rules),
            "receivers": len(config.receivers),
            "silences": len(config.silences),
            "assigned_partitions": assigned,
            "in_flight": len(self.pipeline.dispatcher.in_flight),
            "runs_known": len(self.view),
            # the SQL ledger (GET /api/v1/deliveries): "caught_up" once it holds all the view has read
            "ledger_sql": (
                "off"
                if self.projection is None
                else "caught_up"
                if ready and self.projection.idle
                else "catching_up"
            ),
        }

    async def on_start(self) -> None:
        # faust has configured logging by now: keep every secret value the dispatcher met out of it.
        secret_filter = SecretLogFilter(self.pipeline.dispatcher.scrubber)
        for handler in logging.getLogger().handlers:
            handler.addFilter(secret_filter)
        logging.getLogger("aiohttp.server").addFilter(MalformedRequestLog())
        if self.kafka_line:
            log.info("%s", self.kafka_line)
        await self.publisher.start()
        if self.projection is not None:
            await self.projection.start()
        await self.view.start()
        api = create_api(
            publisher=self.publisher,
            record_for=self._lookup,
            run_for=self._run_lookup,
            health=self._health,
            max_body_bytes=self.settings.max_event_bytes * 16,
            tokens=self.tokens,
            alerts=self.pipeline.alerts,
            feed=self.feed,
            deliveries=self.projection,
        )
        self._runner = web.AppRunner(api, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.web_host, self.settings.web_port)
        await site.start()
        access = f" (bearer tokens from {self.tokens.source})" if self.tokens else ""
        print(f"runherald API listening on {self.url}{access}", flush=True)
        if self.runtime:
            print(f"runherald worker: {self.runtime}", flush=True)
        if self.announce:
            print(self.announce, flush=True)

    async def on_stop(self) -> None:
        steps: list[tuple[str, Callable[[], Awaitable[Any]] | None]] = [
            ("the redriver", self.pipeline.redriver.stop),
            ("the dispatcher's sends", self.pipeline.dispatcher.drain),
            ("the notifiers", self.notifiers.close if self.notifiers is not None else None),
            # The live feed before the HTTP runner: it ends every live stream, which the runner waits for.
            ("the live feed", self.feed.stop),
            ("the HTTP API", self._runner.cleanup if self._runner is not None else None),
            ("the ledger view", self.view.stop),
            ("the SQL ledger", self.projection.stop if self.projection is not None else None),
            ("the run fetcher", self.pipeline.run_fetcher.stop),
            ("the alert rules", self.pipeline.alerts.stop),
            ("the publisher", self.publisher.stop),
        ]
        for name, stop in steps:
            if stop is not None:
                STOPPING[0] = name
                await stop()
        STOPPING[0] = "faust's own services"


SHUTDOWN_GRACE = 30.0
STOPPING = ["faust's own services"]  # what the worker's stop is doing: named if the shutdown hangs


class _Worker(faust.Worker):
    """faust's Worker with a bounded shutdown: if stopping hangs (say the broker is gone and a final
    commit retries for ever), the process exits anyway after SHUTDOWN_GRACE seconds."""

    def _schedule_shutdown(self, signal: Any) -> None:
        timer = threading.Timer(SHUTDOWN_GRACE, self._give_up)
        timer.daemon = True
        timer.start()
        super()._schedule_shutdown(signal)

    async def on_startup_finished(self) -> None:
        await super().on_startup_finished()
        freeze_startup_heap()

    @staticmethod
    def _give_up() -> None:
        print(
            f"runherald: shutdown did not finish within {SHUTDOWN_GRACE:.0f}s"
            f" (stopping {STOPPING[0]}); exiting",
            file=sys.stderr,
        )
        os._exit(1)


def freeze_startup_heap() -> None:
    """Move everything alive after startup out of the garbage collector's sight (gc.freeze).

    The oldest generation is collected now and then, and each collection walks every object in it:
    with faust, aiokafka and aiohttp loaded that walk took 90 ms here, a stall every send waiting at
    that moment pays. Startup's objects live for the whole process anyway; freezing them leaves the
    collector only what was made since.
    """
    gc.collect()
    gc.freeze()


def install_event_loop(kind: str) -> str:
    """Make new event loops uvloop's (kind "uvloop") or the standard library's; returns the kind in use.

    Set before faust creates its loops, so the worker's loop and its consumer thread's loop are both
    uvloop: the same work costs the worker about a fifth less CPU (see README, benchmarks).
    """
    if kind == "uvloop":
        try:
            import uvloop
        except ImportError:
            log.warning("uvloop is not installed: running on the standard asyncio event loop")
            return "asyncio"
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        return "uvloop"
    asyncio.set_event_loop_policy(None)
    return "asyncio"


def run_worker(
    settings: Settings, *, announce: str = "", log_level: str | None = None, banner: bool = False
) -> int:
    """Run one worker in the foreground until SIGINT/SIGTERM; returns the exit code.

    `log_level` overrides settings.log_level; `banner` shows faust's start-up banner and the event
    loop line (`runherald dev` shows neither unless --verbose).
    """
    tokens = api_tokens(settings)  # a bad tokens file, or no tokens off loopback: stop before anything
    if not seal_keys().private:
        # Without them no sealed secret opens, and POST /api/v1/runs cannot seal: say so now, not per send.
        raise SealKeyError(
            f"a worker needs the private keys that open sealed secret_params: set {PRIVATE_KEYS_ENV} or "
            f"{PRIVATE_KEYS_ENV}_FILE (`runherald keys create` makes a key pair)"
        )
    loop_kind = install_event_loop(settings.event_loop)
    with quiet_kafka_log():  # no broker: BrokerUnavailable says so in one line
        cluster, plan = asyncio.run(_prepare_kafka(settings))
    notifiers = Notifiers(NotifierSettings.from_settings(settings))
    pipeline = create_pipeline(settings, notifier_for=notifiers, kafka=plan)
    consumer = "in its own thread" if settings.consumer_thread else "on the event loop"
    runtime = f"event loop {loop_kind}, Kafka consumer {consumer}"
    service = ApiService(
        pipeline,
        notifiers=notifiers,
        tokens=tokens,
        announce=announce,
        runtime=runtime if banner or not announce else "",
        kafka_line=plan.line(cluster),
        idempotent=plan.idempotent,
    )
    worker = _Worker(
        pipeline.app,
        service,
        loglevel=(log_level or settings.log_level).upper(),
        quiet=not banner,
        redirect_stdouts=False,
    )
    worker.spinner = None  # faust's spinner turns the root logger to DEBUG: every Kafka request logged
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


async def _prepare_kafka(settings: Settings) -> tuple[Cluster, Plan]:
    """Ask the cluster what it offers, decide acks, idempotence and replication, create missing topics."""
    cluster = await probe_cluster(settings)
    plan = plan_for(settings, cluster)  # BrokerUnavailable if idempotence is required and missing
    await ensure_topics(settings)
    return cluster, plan


def run_dev(
    settings: Settings,
    *,
    broker_port: int | None = None,
    external_broker: bool = False,
    verbose: bool = False,
) -> int:
    """The embedded stack: a memory-only broker, one worker and the API, in one foreground process tree.

    It prints where the API and the broker are and how to stop; the worker's log only at warning
    level, unless `verbose` or a log_level set on purpose. With no seal private keys configured it
    seals with a key pair made for this process only, and says so.
    """
    keys = seal_keys()
    seal_hint = ""
    if not keys.private:
        private, public = generate_key_pair()
        use_keys(SealKeys(private=parse_private_keys(private, "runherald dev"), fernet=keys.fernet))
        seal_hint = f"{PUBLIC_KEY_ENV}={public} "
        print(
            f"runherald dev: no {PRIVATE_KEYS_ENV}: sealing with a key pair made for this process only",
            flush=True,
        )
    broker = None
    scratch: tempfile.TemporaryDirectory[str] | None = None
    if not external_broker:
        port = broker_port or 9092
        if broker_port is None and not _port_free(port):
            port = free_port()
        broker = EmbeddedBroker(port=port)
        try:
            broker.start()
        except Exception as exc:
            print(f"runherald dev: cannot start the embedded broker: {exc}", file=sys.stderr)
            return 1
        settings = settings.replace(
            broker=broker.url,
            fetch_max_wait_ms=min(settings.fetch_max_wait_ms, EMBEDDED_FETCH_WAIT_MS),
            session_timeout=min(settings.session_timeout, 6.0),
            allow_loopback_egress=True,
        )
        if settings.source_of("data_dir") == "default" and settings.source_of("ledger_db") == "default":
            # The broker forgets everything at exit: so does the SQL ledger, which would otherwise list
            # runs that the next `runherald dev` knows nothing about.
            scratch = tempfile.TemporaryDirectory(prefix="runherald-dev-")
            settings = settings.replace(data_dir=scratch.name)
    kind = "embedded, memory only: nothing survives a restart" if broker else "external"
    announce = "\n".join(
        [
            f"runherald dev: broker {settings.broker} ({kind})",
            f"runherald dev: dashboard http://{settings.web_host}:{settings.web_port}/ui",
            f"runherald dev: try: RUNHERALD_BROKER={settings.broker} {seal_hint}runherald publish run.json",
            "runherald dev: Ctrl-C stops it" + ("" if verbose else " (--verbose shows the worker's log)"),
        ]
    )
    if verbose:
        log_level = settings.log_level if settings.log_level == "debug" else "info"
    else:
        log_level = "warning" if settings.source_of("log_level") == "default" else settings.log_level
    try:
        return run_worker(settings, announce=announce, log_level=log_level, banner=verbose)
    finally:
        if broker is not None:
            broker.stop()
        if scratch is not None:
            scratch.cleanup()


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
