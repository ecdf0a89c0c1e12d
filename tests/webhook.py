"""A local HTTP server for the tests of what posts to webhooks (budget alerts, failure alerts)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer


class Webhook:
    """A local HTTP server that records each JSON body posted to it; `fail` answers 500."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        self.fail = False
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if hook.fail:
                    self.send_response(500)
                else:
                    hook.received.append(body)
                    self.send_response(200)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/budgets"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
