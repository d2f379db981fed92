"""The HTTP API's alert configuration routes: rules, receivers, and applying a whole document.

(skeleton: filled in by the alert rules work)
"""

from __future__ import annotations

from aiohttp import web

from runherald.streams.alert_store import AlertStore


def add_rule_routes(app: web.Application, alerts: AlertStore) -> None:
    """Register GET /api/v1/rules, GET|PUT|DELETE /api/v1/rules/{name}, the same for receivers."""
