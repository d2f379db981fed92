"""SmtpServer: an aiosmtpd server on loopback (plain, STARTTLS or implicit TLS) that records mail.

aiosmtpd is a test-only dependency (the ``test`` extra): it is imported when a server starts, so this
module, and ``runherald.testing`` with it, import without it (``runherald bench`` uses the other peers).
"""

from __future__ import annotations

import asyncio
import datetime
import email
import email.policy
import ipaddress
import socket
import ssl
import tempfile
import threading
import time
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

if TYPE_CHECKING:
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session

SmtpMode = Literal["plain", "starttls", "tls"]


@dataclass(slots=True)
class ReceivedMail:
    """One accepted mail: envelope, parsed message, and whether TLS and AUTH were used."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    message: EmailMessage
    tls: bool
    login: str | None
    arrived_at: float


@dataclass(frozen=True, slots=True)
class TestCertificate:
    """A self-signed certificate for localhost / 127.0.0.1, written to PEM files."""

    cert_path: Path
    key_path: Path

    def server_context(self) -> ssl.SSLContext:
        """Server-side TLS context using this certificate."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_path, self.key_path)
        return context

    def client_context(self) -> ssl.SSLContext:
        """Client-side TLS context that trusts this certificate (and verifies hostnames)."""
        return ssl.create_default_context(cafile=str(self.cert_path))


def generate_certificate(directory: str | Path, common_name: str = "localhost") -> TestCertificate:
    """Create a fresh self-signed certificate valid for localhost and 127.0.0.1."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory = Path(directory)
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return TestCertificate(cert_path, key_path)


def _transport_is_tls(server: SMTP) -> bool:
    transport = server.transport
    return transport is not None and transport.get_extra_info("sslcontext") is not None


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


class _Recorder:
    """aiosmtpd handler that keeps every accepted message."""

    def __init__(self) -> None:
        self.mails: list[ReceivedMail] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        data = envelope.original_content or b""
        message = email.message_from_bytes(data, policy=email.policy.default)
        login = session.auth_data if isinstance(session.auth_data, str) else None
        mail = ReceivedMail(
            mail_from=str(envelope.mail_from),
            rcpt_tos=list(envelope.rcpt_tos),
            data=data,
            message=message,
            tls=session.ssl is not None or _transport_is_tls(server),
            login=login,
            arrived_at=time.time(),
        )
        with self.lock:
            self.mails.append(mail)
        return "250 Message accepted for delivery"


class SmtpServer:
    """A loopback SMTP server: ``mode`` is plain, starttls (required) or tls (implicit); optional AUTH.

    ``auth={"user": "password"}`` requires clients to log in. For TLS modes a certificate is
    generated on start; ``client_context()`` gives an SSL context that trusts it.
    """

    def __init__(
        self, mode: SmtpMode = "plain", auth: dict[str, str] | None = None, host: str = "127.0.0.1"
    ) -> None:
        self.mode = mode
        self.auth = dict(auth) if auth else None
        self.host = host
        self.port = 0
        self.certificate: TestCertificate | None = None
        self._recorder = _Recorder()
        self._controller: Controller | None = None
        self._tempdir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def messages(self) -> list[ReceivedMail]:
        """Mails accepted so far."""
        with self._recorder.lock:
            return list(self._recorder.mails)

    def client_context(self) -> ssl.SSLContext:
        """SSL context trusting this server's certificate (TLS modes only)."""
        if self.certificate is None:
            raise RuntimeError("this SmtpServer has no certificate (plain mode, or not started)")
        return self.certificate.client_context()

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        from aiosmtpd.smtp import AuthResult, LoginPassword

        if not isinstance(auth_data, LoginPassword) or self.auth is None:
            return AuthResult(success=False, handled=False)
        user, password = auth_data.login.decode(), auth_data.password.decode()
        ok = user in self.auth and self.auth[user] == password
        return AuthResult(success=ok, handled=False, auth_data=user if ok else None)

    def _start(self) -> None:
        from aiosmtpd.controller import Controller

        kwargs: dict[str, Any] = {}
        if self.mode != "plain":
            self._tempdir = tempfile.TemporaryDirectory(prefix="runherald-smtp-")
            self.certificate = generate_certificate(self._tempdir.name)
        if self.mode == "starttls":
            assert self.certificate is not None
            kwargs.update(tls_context=self.certificate.server_context(), require_starttls=True)
        if self.mode == "tls":
            assert self.certificate is not None
            kwargs["ssl_context"] = self.certificate.server_context()
        if self.auth is not None:
            kwargs.update(
                authenticator=self._authenticate,
                auth_required=True,
                auth_require_tls=self.mode != "plain",
            )
        self.port = _free_port(self.host)
        self._controller = Controller(self._recorder, hostname=self.host, port=self.port, **kwargs)
        self._controller.start()

    async def start(self) -> None:
        """Start the server thread."""
        await asyncio.to_thread(self._start)

    async def stop(self) -> None:
        """Stop the server and remove the certificate files."""
        if self._controller is not None:
            await asyncio.to_thread(self._controller.stop)
            self._controller = None
        if self._tempdir is not None:
            self._tempdir.cleanup()
            self._tempdir = None

    async def wait_for_messages(self, count: int, within: float = 5.0) -> None:
        """Wait until at least ``count`` mails were accepted."""
        deadline = time.monotonic() + within
        while len(self.messages) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"expected {count} mails, got {len(self.messages)}")
            await asyncio.sleep(0.02)

    async def __aenter__(self) -> SmtpServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
