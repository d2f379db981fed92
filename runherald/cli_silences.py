"""``runherald silence``: add, list and expire silences, through the HTTP API.

(skeleton: filled in by the silences work)
"""

from __future__ import annotations

import click

from runherald.cli_common import RunheraldGroup


@click.group(cls=RunheraldGroup, short_help="silences: add, list, expire")
def silence() -> None:
    """Silences mute the deliveries they match, for a while."""


COMMANDS: list[click.Command] = [silence]
