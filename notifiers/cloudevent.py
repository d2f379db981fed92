"""CloudEvent channel: a webhook subscription's delivery, the run as a CloudEvent 1.0 (structured JSON).

Sent as the webhook channel sends (its HTTP request, outcomes, Retry-After, Idempotency-Key and
Standard Webhooks signature with ``webhook-id`` = the delivery id, and the ``X-Runherald-Hops`` header
that stops a run looping back through runherald's own ingress); only the body differs. An internal
kind (``runherald.subscriptions.KIND``): a run's own notification cannot name it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from runherald.notifiers.base import ChannelPreview
from runherald.notifiers.webhook import WebhookNotifier, dump_json

from runherald.delivery import Delivery
from runherald.evaluation import timestamp
from runherald.subscriptions import EVENT_TYPE, KIND

CONTENT_TYPE = "application/cloudevents+json"


def _rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def cloud_event(
    run: Mapping[str, Any], *, event_id: str, project: str, uid: str, created_at: float = 0.0
) -> dict[str, Any]:
    """The CloudEvent of one run state: `data` is the run dict (MLRun shape, secrets already redacted);
    `time` is the run's last_update, else when the delivery was decided."""
    status = run.get("status") or {}
    when = timestamp(status.get("last_update") if isinstance(status, Mapping) else None)
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": f"runherald/{project}",
        "type": EVENT_TYPE,
        "subject": f"{project}/{uid}",
        "time": _rfc3339(when if when is not None else created_at),
        "datacontenttype": "application/json",
        "data": dict(run),
    }


class CloudEventNotifier(WebhookNotifier):
    """POSTs a webhook subscription's CloudEvent, signed when the subscription has a secret."""

    kind = KIND

    def request_body(self, delivery: Delivery, params: Mapping[str, Any]) -> tuple[bytes, str]:
        run = delivery.runs[0] if delivery.runs else {}
        event = cloud_event(
            run,
            event_id=delivery.id,
            project=delivery.project,
            uid=delivery.uid,
            created_at=delivery.created_at,
        )
        return dump_json(event), CONTENT_TYPE

    def preview(
        self,
        message: str,
        severity: str,
        runs: Sequence[Mapping[str, Any]],
        *,
        name: str = "",
        params: Mapping[str, Any] | None = None,
    ) -> ChannelPreview:
        """The CloudEvent of the first run."""
        run = runs[0] if runs else {}
        metadata = run.get("metadata") or {}
        event = cloud_event(
            run, event_id="preview", project=str(metadata.get("project")), uid=str(metadata.get("uid"))
        )
        text = dump_json(event).decode("utf-8")
        return ChannelPreview({"body": text, "content_type": CONTENT_TYPE}, f"CloudEvent:\n{text}")
