"""``runherald rules test``: the dry run of the alert rules for a run, through the HTTP API.

(skeleton: filled in by the dry-run work; registered on the ``rules`` group by runherald.cli)
"""

from __future__ import annotations

import click

COMMANDS: list[click.Command] = []
