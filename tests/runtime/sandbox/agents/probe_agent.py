"""A small agent for the sandbox tests: stdlib HTTP on $PORT, answering questions about its sandbox."""

import json
import os
import socket
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


def attempt_connect(host: str, port: int) -> str:
    try:
        with socket.create_connection((host, port), timeout=1.5):
            return "connected"
    except OSError as exc:
        return f"refused: {exc.strerror or exc}"


def attempt_write(path: str) -> str:
    try:
        with open(path, "w") as f:
            f.write("x")
        return "written"
    except OSError as exc:
        return f"denied: {exc.strerror}"


def read_secret(name: str) -> str:
    with open(os.path.join(os.environ["FLEETPLANE_SECRETS_DIR"], name)) as f:
        return f.read()


def tunnel(host: str, port: int) -> str:
    """CONNECT through $HTTPS_PROXY (the allowlist's egress proxy), then say ping."""
    proxy = urlparse(os.environ["HTTPS_PROXY"])
    with socket.create_connection((proxy.hostname, proxy.port), timeout=5) as conn:
        conn.sendall(f"CONNECT {host}:{port} HTTP/1.1\r\nhost: {host}:{port}\r\n\r\n".encode())
        head = conn.recv(4096).decode()
        status = head.split("\r\n", 1)[0]
        if " 200 " not in status:
            return status
        conn.sendall(b"ping")
        return status + " / " + conn.recv(64).decode()


def call_gateway() -> dict:
    request = urllib.request.Request(
        os.environ["OPENAI_BASE_URL"] + "/models",
        headers={"Authorization": "Bearer " + os.environ["OPENAI_API_KEY"]},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def chat(model: str, stream: bool = False) -> dict:
    """One chat completion with the official openai SDK, configured only by the injected environment."""
    from openai import OpenAI

    messages = [{"role": "user", "content": "hello from the sandbox"}]
    if stream:
        chunks = list(
            OpenAI().chat.completions.create(model=model, messages=messages, max_tokens=8, stream=True)
        )
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        return {"chunks": len(chunks), "content": text}
    completion = OpenAI().chat.completions.create(model=model, messages=messages, max_tokens=8)
    return {"id": completion.id, "content": completion.choices[0].message.content}


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep stderr for the tests' own lines
        pass

    def _send(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        url = urlparse(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path == "/healthz":
            healthy = not os.path.exists("/tmp/unhealthy")
            self._send(200 if healthy else 500, {"healthy": healthy})
        elif url.path == "/env":
            self._send(200, dict(os.environ))
        elif url.path == "/connect":
            self._send(200, {"result": attempt_connect(q["host"], int(q["port"]))})
        elif url.path == "/status":  # capabilities, no_new_privs and seccomp mode of the agent itself
            with open("/proc/self/status") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
            self._send(
                200, {k: fields[k].strip() for k in ("CapEff", "CapPrm", "CapBnd", "NoNewPrivs", "Seccomp")}
            )
        elif url.path == "/exists":
            self._send(200, {"exists": os.path.exists(q["path"])})
        elif url.path == "/tunnel":
            self._send(200, {"result": tunnel(q["host"], int(q["port"]))})
        elif url.path == "/write":
            self._send(200, {"result": attempt_write(q["path"])})
        elif url.path == "/secret":
            self._send(200, {"value": read_secret(q["name"])})
        elif url.path == "/pids":
            self._send(200, {"pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit())})
        elif url.path == "/chat":
            self._send(200, chat(q["model"], stream=q.get("stream") == "1"))
        elif url.path == "/gateway":
            self._send(200, call_gateway())
        elif url.path == "/sick":
            open("/tmp/unhealthy", "w").close()
            self._send(200, {"sick": True})
        elif url.path == "/print":
            print(q.get("text", ""), flush=True)
            self._send(200, {"printed": True})
        else:
            self._send(404, {"error": url.path})

    def do_POST(self):
        length = int(self.headers.get("content-length", 0))
        body = json.loads(self.rfile.read(length) or b"{}")
        self._send(200, {"echo": body, "replica": os.environ.get("FLEETPLANE_REPLICA")})


if __name__ == "__main__":
    print("agent starting", flush=True)
    if "SECOND_PORT" in os.environ:  # a metrics-style second port, for probes that name a port
        import threading

        second = ThreadingHTTPServer(("127.0.0.1", int(os.environ["SECOND_PORT"])), Handler)
        threading.Thread(target=second.serve_forever, daemon=True).start()
    ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
