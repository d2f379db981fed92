"""Mail channel: MLRun's SMTP params and subject, a text + HTML body from templates, sent with aiosmtplib."""

from __future__ import annotations

import ssl
from collections.abc import Mapping, Sequence
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

import aiosmtplib
from runherald.notifiers.base import ChannelPreview
from runherald.notifiers.settings import NotifierSettings

from runherald.channels import (
    MAIL,
    MAIL_ADDRESS_PATTERN,
    MAIL_BOOLEAN_PARAMS,
    MAIL_DEFAULTS,
    MAIL_REQUIRED_PARAMS,
)
from runherald.delivery import Delivery, DeliveryOutcome
from runherald.secrets import SecretScrubber, secret_values_of
from runherald.templating import TemplateRenderer, message_context

# aiosmtplib.send returns only once the server accepted the message, which is its 250 reply to DATA
# (any other reply raises); that reply's code is the one the attempt records.
SMTP_ACCEPTED = 250


class MailParamsError(ValueError):
    """The notification's mail params cannot be used; the message is MLRun's wording."""


def _address_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return value.split(",") if value else []
    if isinstance(value, list):
        return list(value)
    raise MailParamsError("Parameter 'email_addresses' must be a string or a list of strings")


def mail_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """MLRun's mail params with its defaults filled in, validated; raises MailParamsError."""
    merged = dict(params)
    for name, value in MAIL_DEFAULTS.items():
        merged.setdefault(name, value)
    addresses = _address_list(merged.get("email_addresses", "")) + _address_list(
        merged.pop("default_email_addresses", "")
    )
    if not addresses:
        raise MailParamsError("Parameter 'email_addresses' is required for MailNotification")
    merged["email_addresses"] = ",".join(addresses)
    for name in MAIL_REQUIRED_PARAMS:
        if merged.get(name) is None or merged.get(name) == "":
            raise MailParamsError(f"Parameter '{name}' is required for MailNotification")
    for name in MAIL_BOOLEAN_PARAMS:
        if not isinstance(merged[name], bool):
            raise MailParamsError(f"Parameter '{name}' must be a boolean for MailNotification")
    for name in ("username", "password"):
        merged[name] = merged.get(name) or None
    if merged["password"] and not merged["username"]:
        raise MailParamsError(
            "Parameter 'username' is required when 'password' is provided for MailNotification"
        )
    try:
        merged["server_port"] = int(merged["server_port"])
    except (TypeError, ValueError) as exc:
        raise MailParamsError("Parameter 'server_port' must be an integer for MailNotification") from exc
    for address in [merged["sender_address"], *addresses]:
        if not isinstance(address, str):
            raise MailParamsError(f"Email address '{address}' must be a string")
        if not MAIL_ADDRESS_PATTERN.match(address):
            raise MailParamsError(f"Invalid email address '{address}'")
    return merged


def mail_subject(rendered: str) -> str:
    """MLRun's subject rule: the first line, stripped (also keeps header injection out)."""
    lines = rendered.splitlines()
    return lines[0].strip() if lines else ""


def render_mail_parts(
    message: str,
    severity: str,
    runs: Sequence[Mapping[str, Any]],
    *,
    name: str = "",
    renderer: TemplateRenderer,
    ui_url: str | None = None,
    delivery_id: str = "",
    body_override: str | None = None,
) -> dict[str, str]:
    """Subject, text body and HTML body for one message."""
    context = message_context(message, severity, runs, name=name, ui_url=ui_url, delivery_id=delivery_id)
    html = renderer.render("mail_body.html.j2", context)
    if body_override:
        # MLRun's message_body_override: the literal {{ runs }} / {{runs}} takes the HTML rendering.
        html = body_override.replace("{{ runs }}", html).replace("{{runs}}", html)
    return {
        "subject": mail_subject(renderer.render("mail_subject.txt.j2", context)),
        "text": renderer.render("mail_body.txt.j2", context),
        "html": html,
    }


def message_id(delivery_id: str, sender_address: str) -> str:
    """A Message-ID derived from the delivery id, so receivers can drop duplicates."""
    domain = sender_address.rpartition("@")[2] or "runherald"
    return f"<{delivery_id}.runherald@{domain}>"


def mail_thread(delivery: Delivery) -> dict[str, Any] | None:
    """The mail conversation the delivery continues (runherald.conversation), if it has one."""
    thread = delivery.thread
    if thread is None or thread.get("kind") != "mail" or not thread.get("message_id"):
        return None
    return thread


class MailNotifier:
    """Sends one multipart (text + HTML) mail per delivery through an SMTP server.

    The mails of one run's notification are one conversation: the first mail's Message-ID and subject
    are recorded in the run's ledger record, and every later mail carries ``In-Reply-To`` and
    ``References`` pointing at it, with the subject ``Re: <the first mail's subject>``.
    """

    kind = MAIL.name

    def __init__(
        self, settings: NotifierSettings | None = None, tls_context: ssl.SSLContext | None = None
    ) -> None:
        self.settings = settings or NotifierSettings()
        self.renderer = TemplateRenderer(self.settings.templates_dir)
        self.tls_context = tls_context  # extra trusted CAs (tests, private servers)

    def build_message(self, delivery: Delivery, params: Mapping[str, Any]) -> EmailMessage:
        """The EmailMessage for one delivery, given validated params."""
        parts = render_mail_parts(
            delivery.message,
            delivery.severity,
            delivery.runs,
            name=delivery.name,
            renderer=self.renderer,
            ui_url=self.settings.ui_url,
            delivery_id=delivery.id,
            body_override=params.get("message_body_override"),
        )
        mail = EmailMessage()
        mail["From"] = params["sender_address"]
        mail["To"] = params["email_addresses"]
        thread = mail_thread(delivery)
        mail["Subject"] = parts["subject"] if thread is None else f"Re: {thread.get('subject', '')}"
        mail["Date"] = formatdate(localtime=False, usegmt=True)
        mail["Message-ID"] = message_id(delivery.id, params["sender_address"])
        if thread is not None:
            mail["In-Reply-To"] = thread["message_id"]
            mail["References"] = thread["message_id"]
        mail["X-Runherald-Delivery"] = delivery.id
        mail.set_content(parts["text"])
        mail.add_alternative(parts["html"], subtype="html")
        return mail

    def check_params(self, params: Mapping[str, Any]) -> None:
        """MLRun's check of mail params (after MLRun's defaults are filled in)."""
        MAIL.check_params(MAIL.with_defaults(params))

    def endpoint(self, delivery: Delivery, params: Mapping[str, Any]) -> str | None:
        """The SMTP server, for its circuit breaker: ``smtp://host:port``."""
        try:
            checked = mail_params(params)
        except MailParamsError:
            return None
        return f"smtp://{checked['server_host']}:{checked['server_port']}"

    def preview(
        self,
        message: str,
        severity: str,
        runs: Sequence[Mapping[str, Any]],
        *,
        name: str = "",
        params: Mapping[str, Any] | None = None,
    ) -> ChannelPreview:
        """The subject and the two bodies the mail would carry."""
        parts = render_mail_parts(
            message, severity, runs, name=name, renderer=self.renderer, ui_url=self.settings.ui_url
        )
        return ChannelPreview(parts, f"mail subject: {parts['subject']}\nmail text:\n{parts['text']}")

    async def send(self, delivery: Delivery, params: Mapping[str, Any]) -> DeliveryOutcome:
        """Send once: connection trouble and 4xx SMTP replies are retryable, 5xx and auth failures not."""
        scrubber = SecretScrubber(secret_values_of(params, delivery.notification))
        try:
            checked = mail_params(params)
        except MailParamsError as exc:
            return DeliveryOutcome.permanent(scrubber.scrub(str(exc)))
        try:
            mail = self.build_message(delivery, checked)
        except Exception as exc:
            return DeliveryOutcome.permanent(scrubber.scrub(f"rendering the mail failed: {exc}"))
        timeout = float(checked.get("timeout") or self.settings.timeout)
        try:
            await aiosmtplib.send(
                mail,
                hostname=checked["server_host"],
                port=checked["server_port"],
                username=checked["username"],
                password=checked["password"],
                use_tls=checked["use_tls"],
                start_tls=checked["start_tls"],
                validate_certs=checked["validate_certs"],
                tls_context=self.tls_context if checked["validate_certs"] else None,
                timeout=timeout,
            )
        except Exception as exc:
            return _classify_smtp_error(exc, scrubber, timeout)
        if mail_thread(delivery) is not None:
            return DeliveryOutcome.sent(response_code=SMTP_ACCEPTED)
        # The first mail: the conversation every later mail of this run's notification replies to.
        thread = {
            "kind": "mail",
            "message_id": str(mail["Message-ID"]),
            "subject": str(mail["Subject"]),
            "latest": delivery.created_at,
            "state": delivery.state,
        }
        return DeliveryOutcome.sent(response_code=SMTP_ACCEPTED, thread=thread)

    async def close(self) -> None:
        """Nothing to release: every send opens and closes its own SMTP connection."""


def _classify_smtp_error(exc: Exception, scrubber: SecretScrubber, timeout: float) -> DeliveryOutcome:
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        return DeliveryOutcome.permanent(f"SMTP authentication failed ({exc.code})", response_code=exc.code)
    if isinstance(exc, aiosmtplib.SMTPTimeoutError | TimeoutError):
        return DeliveryOutcome.retryable(f"SMTP timed out after {timeout:g}s", unreachable=True)
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = sorted({error.code for error in exc.recipients})
        reason = scrubber.scrub(f"SMTP recipients refused ({', '.join(map(str, codes))})")
        retry = all(400 <= code < 500 for code in codes)
        code = max(codes) if codes else None  # the worst reply decides, as it does retry
        if retry:
            return DeliveryOutcome.retryable(reason, response_code=code)
        return DeliveryOutcome.permanent(reason, response_code=code)
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        reason = scrubber.scrub(f"SMTP {exc.code}: {' '.join(exc.message.split())[:120]}")
        if 400 <= exc.code < 500:
            return DeliveryOutcome.retryable(reason, response_code=exc.code)
        return DeliveryOutcome.permanent(reason, response_code=exc.code)
    if isinstance(exc, ssl.SSLError | aiosmtplib.SMTPNotSupported) or isinstance(exc.__cause__, ssl.SSLError):
        return DeliveryOutcome.permanent(scrubber.scrub(f"SMTP TLS error: {type(exc).__name__}"))
    if isinstance(exc, aiosmtplib.SMTPConnectError | aiosmtplib.SMTPServerDisconnected | OSError):
        return DeliveryOutcome.retryable(scrubber.scrub(f"SMTP connection error: {exc}"), unreachable=True)
    return DeliveryOutcome.permanent(scrubber.scrub(f"SMTP error: {type(exc).__name__}: {exc}"))
