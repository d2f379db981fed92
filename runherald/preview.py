"""The dry run (`runherald render`): would each notification of a run be sent now, and what every
channel would get, rendered by the notifiers themselves. Nothing is sent."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from runherald import channels, rules
from runherald.config import Settings
from runherald.notifiers import ChannelPreview, Notifiers, NotifierSettings


@dataclass(frozen=True, slots=True)
class NotificationPreview:
    """One notification's message, and what each channel would send for it (keyed by kind)."""

    kind: str
    message: str
    severity: str
    channels: Mapping[str, ChannelPreview]

    def to_dict(self) -> dict[str, Any]:
        """As ``runherald render -o json`` shows it: kind, message, severity, and one entry per channel."""
        shown = {kind: preview.data for kind, preview in self.channels.items()}
        return {"kind": self.kind, "message": self.message, "severity": self.severity, **shown}

    def own_channel_text(self) -> str:
        """What the notification's own channel would send, as text."""
        own = self.channels.get(self.kind)
        return own.text if own is not None else f"kind {self.kind!r} has no channel preview"


def preview_notification(
    run: Mapping[str, Any], notification: Mapping[str, Any], notifiers: Notifiers
) -> NotificationPreview:
    """Ask every kind's notifier what it would send for this run and notification."""
    message = rules.compose_message(dict(run), dict(notification))
    severity = str(notification.get("severity") or "info")
    name = str(notification.get("name") or "")
    params = dict(notification.get("params") or {})
    shown = {}
    for kind in channels.KINDS:
        preview = notifiers(kind).preview(message, severity, [dict(run)], name=name, params=params)
        if preview is not None:
            shown[kind] = preview
    return NotificationPreview(str(notification.get("kind") or "slack"), message, severity, shown)


def render_preview(
    run: Mapping[str, Any], notification: Mapping[str, Any], settings: NotifierSettings | None = None
) -> dict[str, Any]:
    """What each channel would send for this run and notification, without sending anything."""
    return preview_notification(run, notification, Notifiers(settings)).to_dict()


@dataclass(frozen=True, slots=True)
class DryRun:
    """One notification of a run: would it be sent now (and why), and what each channel would get."""

    run: str  # "project/uid"
    name: str
    kind: str
    send: bool
    reason: str
    preview: NotificationPreview

    def to_dict(self) -> dict[str, Any]:
        """As ``runherald render -o json`` shows it."""
        return {
            "run": self.run,
            "name": self.name,
            "kind": self.kind,
            "send": self.send,
            "reason": self.reason,
            "preview": self.preview.to_dict(),
        }

    def text(self) -> str:
        """As ``runherald render`` prints it: the decision, then what its own channel would get."""
        verdict = "would be sent" if self.send else "would NOT be sent"
        name = self.name or '""'
        return "\n".join(
            [
                f"== {self.run} {name} ({self.kind}): {verdict}: {self.reason}",
                f"message: {self.preview.message}",
                f"severity: {self.preview.severity}",
                self.preview.own_channel_text(),
            ]
        )


def dry_run(run: dict[str, Any], settings: Settings, only: str | None = None) -> list[DryRun]:
    """Per notification of a run (or only the one named `only`): the decision and the previews."""
    notifiers = Notifiers(NotifierSettings.from_settings(settings))
    meta = run.get("metadata") if isinstance(run.get("metadata"), dict) else {}
    spec = run.get("spec") if isinstance(run.get("spec"), dict) else {}
    notifications = [n for n in (spec or {}).get("notifications") or [] if isinstance(n, dict)]
    duplicate_names = rules.check_unique_names(notifications)
    redacted = rules.redact_run(run)  # receivers see the run with its secret_params REDACTED
    dry_runs = []
    for notification in notifications:
        name = str(notification.get("name") or "")
        if only is not None and name != only:
            continue
        if duplicate_names:
            decision = rules.Decision(False, duplicate_names)
        else:
            decision = rules.evaluate(
                run,
                notification,
                condition_error_policy=settings.condition_error_policy,
                notify_iterations=settings.notify_iterations,
            )
        dry_runs.append(
            DryRun(
                run=f"{(meta or {}).get('project')}/{(meta or {}).get('uid')}",
                name=name,
                kind=str(notification.get("kind") or "slack"),
                send=decision.send,
                reason=decision.reason,
                preview=preview_notification(redacted, notification, notifiers),
            )
        )
    return dry_runs
