"""A real HTTP server on 127.0.0.1 speaking ``POST /v1/embeddings``, for tests.

stdlib ``http.server`` in a thread; deterministic vectors (seeded by the text's sha256,
deliberately not unit length so the embedder's normalisation is exercised); counts
requests and inputs; can be told to fail the next N requests or to never answer.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np


def fake_vector(text: str, dim: int) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    return np.random.default_rng(seed).standard_normal(dim).astype(np.float32) * 3.0


class FakeEmbeddingServer:
    def __init__(self, dim: int = 16) -> None:
        self.dim = dim
        self.requests: list[dict[str, Any]] = []  # request bodies, in arrival order
        self.fail_next = 0  # answer this many requests with fail_status
        self.fail_status = 503
        self.hang = threading.Event()  # set: requests hang until release is set
        self.release = threading.Event()
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server._lock:
                    server.requests.append(body)
                    failing = server.fail_next > 0
                    if failing:
                        server.fail_next -= 1
                if server.hang.is_set():
                    server.release.wait(30)
                    return
                if self.path != "/v1/embeddings":
                    return self._send(404, {"error": {"message": "not found"}})
                if failing:
                    return self._send(server.fail_status,
                                      {"error": {"message": "try again", "type": "server"}},
                                      {"retry-after-ms": "10"})
                inputs = body["input"]
                if isinstance(inputs, str):
                    inputs = [inputs]
                dim = body.get("dimensions") or server.dim
                data = []
                for i, text in enumerate(inputs):
                    v = fake_vector(text, dim)
                    emb: Any = (base64.b64encode(v.tobytes()).decode()
                                if body.get("encoding_format") == "base64" else v.tolist())
                    data.append({"object": "embedding", "index": i, "embedding": emb})
                data.reverse()  # servers may answer out of order; index is what counts
                self._send(200, {"object": "list", "data": data, "model": body["model"],
                                 "usage": {"prompt_tokens": 1, "total_tokens": 1}})

            def _send(self, status: int, payload: dict[str, Any],
                      headers: dict[str, str] | None = None) -> None:
                raw = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(raw)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    @property
    def inputs(self) -> list[str]:
        """Every text the server was asked to embed, in order."""
        out: list[str] = []
        for r in self.requests:
            out.extend([r["input"]] if isinstance(r["input"], str) else r["input"])
        return out

    def start(self) -> FakeEmbeddingServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.release.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)
