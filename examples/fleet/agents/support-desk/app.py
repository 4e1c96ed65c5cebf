"""support-desk: a bring-your-own agent — a plain Python HTTP service that calls the fleetplane gateway
with the official openai SDK.

It knows nothing about fleetplane: the sandbox gives it $PORT to listen on, and OPENAI_BASE_URL and
OPENAI_API_KEY pointing at a bridge to the gateway (which swaps in the agent's own virtual key, so its
quota and breakers apply). It serves the invoke API (POST /invoke, an A2A-style task) and /healthz.
"""

from __future__ import annotations

import json
import os
import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from openai import OpenAI

MODEL = os.environ.get("MODEL", "chat-small")
REPLICA = os.environ.get("FLEETPLANE_REPLICA", socket.gethostname())
client = OpenAI()  # OPENAI_BASE_URL and OPENAI_API_KEY come from the sandbox


class Agent(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        if self.path == "/healthz":
            self._send(200, {"status": "ok", "replica": REPLICA})
        else:
            self._send(404, {"error": "not found"})

    def do_POST(self) -> None:  # noqa: N802
        if self.path != "/invoke":
            self._send(404, {"error": "not found"})
            return
        request = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
        question = " ".join(p.get("text", "") for p in request["message"]["parts"] if p.get("kind") == "text")
        # The caller's trace continues through the gateway: pass the traceparent on.
        trace = {"traceparent": self.headers["traceparent"]} if self.headers.get("traceparent") else {}
        reply = client.chat.completions.create(
            model=MODEL,
            messages=[
                {"role": "system", "content": "You are Acme's support desk. Answer briefly."},
                {"role": "user", "content": question},
            ],
            max_tokens=200,
            extra_headers=trace,
        )
        self._send(
            200,
            {
                "kind": "task",
                "id": request.get("taskId"),
                "status": {"state": "completed"},
                "artifacts": [{"parts": [{"kind": "text", "text": reply.choices[0].message.content}]}],
                "metadata": {"replica": REPLICA, "model": reply.model},
            },
        )

    def log_message(self, format: str, *args: object) -> None:  # one line per invoke on stdout
        if self.path != "/healthz":
            print(f"{self.command} {self.path} {args[1] if len(args) > 1 else ''}", flush=True)


if __name__ == "__main__":
    port = int(os.environ.get("PORT", "8080"))
    print(f"support-desk listening on 127.0.0.1:{port} (model {MODEL})", flush=True)
    ThreadingHTTPServer(("127.0.0.1", port), Agent).serve_forever()
