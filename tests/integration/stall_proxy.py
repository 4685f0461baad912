"""A loopback HTTP proxy in front of the moto server that stalls chosen requests, like a slow S3.

Injected exceptions cannot show a deadline overrun: the real danger is a call that neither fails nor
answers (a stalled response, or a body that stops mid-way) for less than botocore's 30 s read timeout.
This proxy forwards everything to the emulator and, for a request matching a rule, holds the answer
back (``stall="response"``) or sends the headers and half the body before holding (``stall="body"``).
"""

from __future__ import annotations

import http.client
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal
from urllib.parse import urlsplit


@dataclass
class StallRule:
    method: str
    path_contains: str
    stall: Literal["response", "body"] = "response"
    seconds: float = 20.0
    times: int = 1
    stalled: int = field(default=0)


class StallProxy:
    """``with StallProxy(upstream) as proxy: proxy.url`` — stalls end early when the proxy closes."""

    def __init__(self, upstream: str) -> None:
        self._upstream = urlsplit(upstream)
        self.rules: list[StallRule] = []
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> StallProxy:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()

    def _take_rule(self, method: str, path: str) -> StallRule | None:
        with self._lock:
            for rule in self.rules:
                if rule.method == method and rule.path_contains in path and rule.stalled < rule.times:
                    rule.stalled += 1
                    return rule
        return None

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                """Quiet: the tests read outcomes, not access logs."""

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                rule = proxy._take_rule(self.command, self.path)
                if rule is not None and rule.stall == "response":
                    proxy._closing.wait(rule.seconds)
                upstream = http.client.HTTPConnection(
                    proxy._upstream.hostname or "127.0.0.1", proxy._upstream.port, timeout=60
                )
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                headers["Host"] = proxy._upstream.netloc
                upstream.request(self.command, self.path, body=body, headers=headers)
                response = upstream.getresponse()
                payload = response.read()
                self.send_response(response.status)
                for name, value in response.getheaders():
                    if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if rule is not None and rule.stall == "body" and len(payload) > 1:
                    self.wfile.write(payload[: len(payload) // 2])
                    self.wfile.flush()
                    proxy._closing.wait(rule.seconds)
                    self.close_connection = True
                    return
                self.wfile.write(payload)
                upstream.close()

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _forward

        return Handler
