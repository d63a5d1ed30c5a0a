"""E-mail through SMTP: smtplib in a worker thread (asyncio.to_thread), bounded by socket timeouts.

    EmailMessage (UTF-8 subject as RFC 2047, plain-text body zh then en)
      ─▶ SMTP / SMTP_SSL ─▶ [STARTTLS] ─▶ [AUTH] ─▶ send_message

smtplib rather than a new dependency (aiosmtplib): one message per notification is no load for a
thread, and the stdlib client is what every relay has been tested against. SMTP's retry rule is its
reply class: 4xx is transient (retryable), 5xx is permanent (bad address, auth refused).
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from gateway.escalation import templates
from gateway.escalation.channel_config import SmtpChannelConfig
from gateway.escalation.channels.http import failed
from gateway.escalation.channels.payload import delivery_id
from gateway.escalation.types import Delivery, Notification, Person

__all__ = ["SmtpChannel", "build_message"]


def build_message(notification: Notification, person: Person, sender: str) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = templates.email_subject(notification)
    message["From"] = sender
    message["To"] = f"{person.name} <{person.email}>" if person.name else str(person.email)
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain="estate-gateway")
    message["X-Estate-Gateway-Delivery"] = delivery_id(notification, person)
    message.set_content(templates.email_body(notification), charset="utf-8")
    return message


def _send_blocking(config: SmtpChannelConfig, message: EmailMessage, recipient: str) -> str:
    """Runs in a worker thread; every socket operation is bounded by config.timeout."""
    context = ssl.create_default_context()
    host, port = config.host, config.effective_port
    client = (
        smtplib.SMTP_SSL(host, port, timeout=config.timeout, context=context)
        if config.security == "ssl"
        else smtplib.SMTP(host, port, timeout=config.timeout)
    )
    with client:
        client.ehlo()
        if config.security == "starttls":
            client.starttls(context=context)
            client.ehlo()
        if config.username is not None and config.password is not None:
            client.login(config.username, config.password)
        client.send_message(message, to_addrs=[recipient])
    return f"accepted by {host}:{port}"


def _smtp_failure(exc: Exception) -> Delivery:
    """Translate smtplib / socket errors; the reply class decides whether a retry can help."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        return failed(f"recipient refused: {exc.recipients}", retryable=all(400 <= c < 500 for c in codes))
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return failed(f"server disconnected: {exc}", retryable=True)
    if isinstance(exc, smtplib.SMTPResponseException):  # auth, sender, data, connect, helo errors
        code = exc.smtp_code
        detail = (
            exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) else exc.smtp_error
        )
        return failed(f"SMTP {code}: {detail}", retryable=not 500 <= code < 600)
    if isinstance(exc, smtplib.SMTPNotSupportedError | ssl.SSLCertVerificationError):
        return failed(f"{type(exc).__name__}: {exc}", retryable=False)  # the config must change
    if isinstance(exc, TimeoutError | OSError):
        return failed(f"{type(exc).__name__}: {exc}", retryable=True)
    return failed(f"{type(exc).__name__}: {exc}", retryable=False)


class SmtpChannel:
    """Sends one e-mail per notification to person.email."""

    def __init__(self, config: SmtpChannelConfig) -> None:
        self.name = config.name
        self.config = config

    async def send(self, notification: Notification, person: Person) -> Delivery:
        if not person.email or "@" not in person.email:
            return failed(f"no e-mail address for {person.id}", retryable=False)
        try:
            message = build_message(notification, person, self.config.sender)
            # Backstop above the socket timeouts (connect, TLS, AUTH, DATA each get config.timeout).
            async with asyncio.timeout(self.config.timeout * 4):
                detail = await asyncio.to_thread(_send_blocking, self.config, message, person.email)
        except Exception as exc:  # a channel never raises; unknown errors are not retried
            return _smtp_failure(exc)
        return Delivery("sent", detail=detail)
