"""``runherald rules``, ``runherald receivers`` and ``runherald check-config``: the alert configuration,
through the HTTP API (so its tokens and scopes apply), and checked offline.

(skeleton: filled in by the alert rules work)
"""

from __future__ import annotations

import click

from runherald.cli_common import RunheraldGroup


@click.group(cls=RunheraldGroup, short_help="alert rules: apply, list, get, delete, test")
def rules() -> None:
    """Alert rules, configured once for every run (see the README, "Alert rules")."""


@click.group(cls=RunheraldGroup, short_help="receivers of alert rules: list, get, delete")
def receivers() -> None:
    """Receivers: destinations defined once, named by rules and by runs' own notifications."""


COMMANDS: list[click.Command] = [rules, receivers]
