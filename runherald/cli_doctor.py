"""``runherald doctor``: what the Kafka cluster offers, what runherald will do with it, and the topics.

Its own module, registered on the click group by runherald.cli with the group's command class (so it
takes the global options, ``-o table|json|yaml`` among them, and fails with one line, exit 1, when the
broker cannot be reached).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Protocol

import click
import yaml

from runherald.config import Settings
from runherald.connect import quiet_kafka_log
from runherald.doctor import diagnose


class _State(Protocol):
    output: str
    verbose: bool

    def settings(self, **flags: Any) -> Settings: ...


def doctor_command(command_class: type[click.Command]) -> click.Command:
    """The ``doctor`` command, made with the CLI's command class."""

    @click.command(
        name="doctor", cls=command_class, short_help="what the Kafka cluster offers and runherald does"
    )
    @click.pass_context
    def doctor(ctx: click.Context) -> None:
        """What the Kafka cluster offers (brokers, API versions, idempotent producers), what runherald
        will do with it (acks, idempotence, replication of new topics, security), and the pipeline's
        topics as they are (existing topics are never changed). Exit 1 if the broker cannot be reached.
        """
        state: _State = ctx.obj
        settings = state.settings()
        if state.verbose:
            report = asyncio.run(diagnose(settings))
        else:
            with quiet_kafka_log():
                report = asyncio.run(diagnose(settings))
        if state.output == "json":
            click.echo(json.dumps(report, indent=2, sort_keys=True))
        elif state.output == "yaml":
            click.echo(yaml.safe_dump(report, sort_keys=True, default_flow_style=False), nl=False)
        else:
            click.echo("\n".join(table_lines(report)))

    return doctor


def table_lines(report: dict[str, Any]) -> list[str]:
    """The report as `-o table` prints it: three sections, then the problems."""
    cluster, plan = report["cluster"], report["runherald"]
    brokers = ", ".join(f"{b['id']}@{b['host']}:{b['port']}" for b in cluster["brokers"])
    apis = " ".join(f"{name} {versions}" for name, versions in cluster["api_versions"].items())
    idempotent = cluster["idempotent_producer"]
    lines = [
        "CLUSTER",
        f"  bootstrap        {cluster['bootstrap']}",
        f"  brokers          {len(cluster['brokers'])}: {brokers} (controller {cluster['controller']})",
        f"  api versions     {cluster['apis']} APIs; {apis}",
        f"  idempotent       {'yes' if idempotent['works'] else 'no'} ({idempotent['detail']})",
        "RUNHERALD",
        f"  acks             {plan['acks']}",
        f"  idempotence      {'on' if plan['idempotence']['enabled'] else 'off'} "
        f"(setting {plan['idempotence']['setting']}: {plan['idempotence']['reason']})",
        f"  new topics       partitions {plan['partitions']}, "
        f"replication factor {plan['replication_factor']}, min.insync.replicas {plan['min_insync_replicas']}",
        "  security         " + ", ".join(f"{k}={v}" for k, v in plan["security"].items() if v is not None),
        "TOPICS",
    ]
    rows = [("NAME", "PARTITIONS", "REPLICATION", "CLEANUP.POLICY", "MIN.INSYNC.REPLICAS")]
    for topic in report["topics"]:
        if not topic["exists"]:
            rows.append((topic["name"], "-", "-", "-", "(not created yet)"))
            continue
        rows.append(
            (
                topic["name"],
                str(topic.get("partitions", "")),
                str(topic.get("replication_factor", "")),
                str(topic.get("cleanup.policy") or "(broker default)"),
                str(topic.get("min.insync.replicas") or "(broker default)"),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  " + "  ".join([*cells, row[-1]]).rstrip())
    lines.append("PROBLEMS" if report["problems"] else "PROBLEMS: none")
    lines.extend(f"  {problem}" for problem in report["problems"])
    return lines


__all__ = ["doctor_command", "table_lines"]
