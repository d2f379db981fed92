"""Real loopback peers (webhook receiver, Slack server, SMTP server) for tests, benchmarks and demos."""

from runherald.testing._server import RecordedRequest, Reply
from runherald.testing.slack import SlackMessage, SlackServer
from runherald.testing.smtp import ReceivedMail, SmtpServer, TestCertificate, generate_certificate
from runherald.testing.webhook import WebhookReceiver

__all__ = [
    "ReceivedMail",
    "RecordedRequest",
    "Reply",
    "SlackMessage",
    "SlackServer",
    "SmtpServer",
    "TestCertificate",
    "WebhookReceiver",
    "generate_certificate",
]
