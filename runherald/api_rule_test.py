"""The HTTP API's dry run of the alert rules: POST /api/v1/rules/test.

(skeleton: filled in by the dry-run work)
"""

from __future__ import annotations

from aiohttp import web

from runherald.config import Settings
from runherald.streams.alert_store import AlertStore


def add_rule_test_routes(app: web.Application, alerts: AlertStore, settings: Settings) -> None:
    """Register POST /api/v1/rules/test."""
