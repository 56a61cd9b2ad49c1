"""A small process for the kubelet harness's tests: an HTTP server with /readyz and /healthz.

Listens on ``$FILTERJOB_HEALTH_PORT`` (the harness's mapped port). ``/healthz`` answers 500 while
the file ``$PODAPP_DEAD_FILE`` exists (a liveness failure on demand). On SIGTERM it prints
``podapp: SIGTERM`` and exits 0, or with ``PODAPP_ON_TERM=ignore`` keeps running (only SIGKILL
ends it). With ``PODAPP_CERT`` (a PEM file with a certificate and its key) it serves HTTPS. At
start it prints one JSON line: its pid and the variables named in ``$PODAPP_PRINT``.
"""

from __future__ import annotations

import http.server
import json
import os
import signal
import ssl
import sys
import threading
from pathlib import Path
from types import FrameType


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        dead = os.environ.get("PODAPP_DEAD_FILE")
        failing = self.path == "/healthz" and dead is not None and Path(dead).exists()
        self.send_response(500 if failing else 200)
        self.end_headers()
        self.wfile.write(b"dead" if failing else b"ok")

    def log_message(self, format: str, *args: object) -> None:
        pass  # probes every second would flood the pod's log


def main() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["FILTERJOB_HEALTH_PORT"])), Handler)
    if os.environ.get("PODAPP_CERT"):
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(os.environ["PODAPP_CERT"])
        server.socket = context.wrap_socket(server.socket, server_side=True)
    wanted = [name for name in os.environ.get("PODAPP_PRINT", "").split(",") if name]
    print(json.dumps({"pid": os.getpid(), "env": {name: os.environ.get(name) for name in wanted}}), flush=True)

    def on_term(signum: int, frame: FrameType | None) -> None:
        print("podapp: SIGTERM", flush=True)
        if os.environ.get("PODAPP_ON_TERM") != "ignore":
            threading.Thread(target=server.shutdown).start()

    signal.signal(signal.SIGTERM, on_term)
    server.serve_forever()
    sys.exit(0)


if __name__ == "__main__":
    main()
