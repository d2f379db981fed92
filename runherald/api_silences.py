"""The HTTP API's silences: GET|POST /api/v1/silences, DELETE /api/v1/silences/{id}.

(skeleton: filled in by the silences work)
"""

from __future__ import annotations

from aiohttp import web

from runherald.streams.alert_store import AlertStore


def add_silence_routes(app: web.Application, alerts: AlertStore) -> None:
    """Register the silence routes."""
