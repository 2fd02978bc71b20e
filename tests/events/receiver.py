"""A real HTTP receiver on loopback that verifies Standard Webhooks signatures."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


class Receiver:
    def __init__(self, port: int, secret: str) -> None:
        self.port = port
        self.secret = secret
        self.received: list[dict] = []  # verified bodies, in arrival order
        self.ids: list[str] = []  # webhook-id headers, in arrival order
        self.rejected = 0
        self.first_request = threading.Event()
        self.hold: threading.Event | None = None  # if set, requests wait on it
        self.server: ThreadingHTTPServer | None = None
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["content-length"]))
                receiver.first_request.set()
                if receiver.hold is not None:
                    receiver.hold.wait(120)
                try:
                    event = Webhook(receiver.secret).verify(body, dict(self.headers))
                except WebhookVerificationError:
                    with receiver.lock:
                        receiver.rejected += 1
                    self.send_response(400)
                    self.end_headers()
                    return
                with receiver.lock:
                    receiver.received.append(event)
                    receiver.ids.append(self.headers["webhook-id"])
                assert json.loads(body)["id"] == self.headers["webhook-id"]
                self.send_response(204)
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
