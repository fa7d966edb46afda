"""The AWS emulator's own process: moto in server mode on 127.0.0.1 (`python -m local.emulator_server`).

`python -m local` starts it (local.emulator.Emulator) so that moto's work
(werkzeug, its dispatch, the services' models and serialisation) runs on a
core of its own instead of sharing one interpreter lock with the front door
and the handlers. The protocol with its parent:

- It listens on 127.0.0.1 on a port the system picks when it binds (no
  other process can take it between choosing and binding), then writes the
  port as its first line on stdout. The socket listens before that line is
  written, so a client may connect as soon as it is read: the parent waits
  for the line, not for a clock.
- It ends when its stdin reaches end of file. The parent holds the pipe's
  other end and closes it to stop it; however the parent ends (Ctrl-C, an
  error, SIGTERM, even SIGKILL), the kernel closes it too, so the emulator
  never outlives the stack.

It keeps connections open (HTTP/1.1 keep-alive): werkzeug's development
server answers every request with `Connection: close`, so botocore would
open a new connection to it for every call.

`GET /_local/ses/sent-messages[?to=<address>]` lists what SES accepted
(`sent_emails`): moto keeps it in this process, and no AWS API reads it back.
"""

from __future__ import annotations

import email
import email.policy
import functools
import io
import json
import logging
import os
import re
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

from handlers.shared.mail.mailer import KIND_HEADER
from local.config import ACCOUNT_ID, REGION

logger = logging.getLogger(__name__)

SENT_MESSAGES_PATH = "/_local/ses/sent-messages"

# WSGI's types, spelled out to keep the import light.
StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def describe_email(message: Any) -> dict[str, Any] | None:
    """One email SES accepted, as `GET /_local/emails` shows it; None for what is not one.

    The service sends raw MIME only (handlers.shared.mail.mailer):
    the kind, both parts and the one-click unsubscribe headers are read back
    from it, and the links a person would follow are picked out.
    """
    from moto.ses.models import RawMessage

    if not isinstance(message, RawMessage):
        return None
    parsed = email.message_from_string(message.raw_data, policy=email.policy.default)
    text = parsed.get_body(("plain",))
    markup = parsed.get_body(("html",))
    unsubscribe = str(parsed.get("List-Unsubscribe", "")).strip("<>")
    described = {
        "id": message.id,
        "kind": parsed.get(KIND_HEADER),
        "from": message.source,
        # moto adds the To header's addresses to the Destinations given.
        "to": list(dict.fromkeys(message.destinations)),
        "subject": str(parsed["Subject"]),
        "text": text.get_content() if text else "",
        "html": markup.get_content() if markup else "",
        "list_unsubscribe": parsed.get("List-Unsubscribe"),
        "list_unsubscribe_post": parsed.get("List-Unsubscribe-Post"),
        "unsubscribe_url": unsubscribe or None,
    }
    confirm = re.search(r"https?://\S+/email/confirm\?token=\S+", described["text"])
    if confirm:
        described["confirm_url"] = confirm.group(0)
    return described


def sent_emails(recipient: str | None = None) -> list[dict[str, Any]]:
    """The emails moto's SES accepted in this process, oldest first; only `recipient`'s if given."""
    from moto.ses.models import ses_backends

    emails = []
    for message in ses_backends[ACCOUNT_ID][REGION].sent_messages:
        described = describe_email(message)
        if described is not None and (recipient is None or recipient in described["to"]):
            emails.append(described)
    return emails


def with_sent_messages(app: WsgiApp) -> WsgiApp:
    """moto's application, plus `GET /_local/ses/sent-messages`."""

    def application(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ["PATH_INFO"] != SENT_MESSAGES_PATH or environ["REQUEST_METHOD"] != "GET":
            return app(environ, start_response)
        recipient = parse_qs(environ.get("QUERY_STRING", "")).get("to", [None])[0]
        body = json.dumps(sent_emails(recipient)).encode()
        start_response(
            "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        )
        return [body]

    return application


def keep_alive_handler() -> type:
    """moto's request handler, answering HTTP/1.1 requests on connections it keeps open.

    werkzeug's `run_wsgi` closes every connection, since it cannot tell
    where an unread request body ends; this one reads each body whole (by
    Content-Length, or chunk by chunk) before it calls the application, and
    answers with a Content-Length, so the next request starts where this one
    ended.
    """
    from moto.moto_server.werkzeug_app import MotoRequestHandler

    class KeepAliveRequestHandler(MotoRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body are two writes: with Nagle's algorithm the body
        # would wait for the client's delayed ACK (40 ms on Linux).
        disable_nagle_algorithm = True

        def run_wsgi(self) -> None:
            if self.headers.get("Expect", "").lower().strip(" \t") == "100-continue":
                self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            self.environ = environ = self.make_environ()
            environ["wsgi.input"] = io.BytesIO(self._request_body(environ))
            status, headers, body = self._call_application(environ)
            code, _, reason = status.partition(" ")
            no_body = self.command == "HEAD" or code in ("204", "304")
            self.send_response(int(code), reason)
            given_length = False
            for name, value in headers:
                lowered = name.lower()
                if lowered == "transfer-encoding":
                    continue
                if lowered == "content-length":
                    # A HEAD answer states the length of the body it omits.
                    if self.command != "HEAD":
                        continue
                    given_length = True
                self.send_header(name, value)
            if not no_body or (self.command == "HEAD" and not given_length):
                self.send_header("Content-Length", str(0 if no_body else len(body)))
            if self.close_connection:  # the client asked to close, or the body's end was unknown
                self.send_header("Connection", "close")
            self.end_headers()
            if not no_body:
                self.wfile.write(body)

        def _request_body(self, environ: dict[str, Any]) -> bytes:
            if environ.get("wsgi.input_terminated"):
                # Transfer-Encoding: chunked; werkzeug's reader stops after the last chunk.
                return environ["wsgi.input"].read()
            length = environ.get("CONTENT_LENGTH", "")
            if length.isascii() and length.isdigit():
                return self.rfile.read(int(length))
            if length:
                self.close_connection = True  # where the body ends is unknown
            return b""

        def _call_application(
            self, environ: dict[str, Any]
        ) -> tuple[str, list[tuple[str, str]], bytes]:
            started: list[Any] = []
            chunks: list[bytes] = []

            def start_response(
                status: str, headers: list[tuple[str, str]], exc_info: Any = None
            ) -> Callable[[bytes], None]:
                started[:] = [status, headers]
                return chunks.append

            try:
                result = self.server.app(environ, start_response)
                try:
                    chunks.extend(result)
                finally:
                    close = getattr(result, "close", None)
                    if close is not None:
                        close()
            except Exception:
                logger.exception("the emulator failed on %s %s", self.command, self.path)
                return "500 Internal Server Error", [("Content-Type", "text/plain")], b""
            return started[0], started[1], b"".join(chunks)

        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            """The console is for the stack's progress, not for every AWS call."""

    return KeepAliveRequestHandler


def memoizing_dispatcher() -> WsgiApp:
    """moto's application, remembering which of its services serves a host.

    moto works it out on every request, by listing its package's directory
    (a stat call per service) and matching a few hundred URL patterns, under
    one lock; for a given host the answer never changes.
    """
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    class MemoizingDispatcher(DomainDispatcherApplication):
        def __init__(self) -> None:
            super().__init__(create_backend_app)
            self._backends: dict[str | None, Any] = {}

        def get_backend_for_host(self, host: str | None) -> Any:
            # Called with self.lock held.
            if host not in self._backends:
                self._backends[host] = super().get_backend_for_host(host)
            return self._backends[host]

    return MemoizingDispatcher()


_DYNAMODB_WRITES = ("put_item", "update_item", "delete_item", "transact_write_items")


def make_dynamodb_writes_atomic() -> None:
    """Serialises moto's DynamoDB writes, as DynamoDB's conditional writes are atomic.

    moto checks a write's condition and then applies it in steps that two
    requests served on two threads can interleave, so two conditional puts
    could both "succeed" where DynamoDB lets one. The per-tenant quotas rest
    on those conditions (handlers.shared.reports.pending, schedule_store).
    """
    from moto.dynamodb.models import DynamoDBBackend

    lock = threading.RLock()

    def atomic(write: Any) -> Any:
        @functools.wraps(write)
        def locked(*args: Any, **kwargs: Any) -> Any:
            with lock:
                return write(*args, **kwargs)

        return locked

    for name in _DYNAMODB_WRITES:
        setattr(DynamoDBBackend, name, atomic(getattr(DynamoDBBackend, name)))


def _exit_when_stdin_ends() -> None:
    sys.stdin.buffer.read()
    # Nothing to save: the emulator's state lives only in memory.
    os._exit(0)


def main() -> None:
    # First, so that a parent that ends while moto is still importing stops it too.
    threading.Thread(target=_exit_when_stdin_ends, name="parent-watch", daemon=True).start()
    logging.basicConfig(level=logging.ERROR)
    make_dynamodb_writes_atomic()
    from werkzeug.serving import make_server

    server = make_server(
        "127.0.0.1",
        0,
        with_sent_messages(memoizing_dispatcher()),
        threaded=True,
        request_handler=keep_alive_handler(),
    )
    print(server.server_address[1], flush=True)
    # The parent reads one line; anything written later must not fill its pipe.
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), sys.stdout.fileno())
    server.serve_forever()


if __name__ == "__main__":
    main()
