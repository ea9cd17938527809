"""Run the caching proxy on loopback in a background thread (tests and benchmarks).

    with ProxyServer(create_app(config)) as proxy:
        client = openai.OpenAI(base_url=proxy.base_url, api_key="sk-...")
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any, Self

__all__ = ["ProxyServer", "free_port"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ProxyServer:
    """uvicorn serving ``app`` on 127.0.0.1 in a daemon thread; ``start`` waits (bounded)
    until it accepts connections and fails loudly if it does not."""

    def __init__(self, app: Any, *, port: int = 0, log_level: str = "warning",
                 startup_timeout: float = 60.0) -> None:
        self.app = app
        self.port = port or free_port()
        self.log_level = log_level
        self.startup_timeout = startup_timeout
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def start(self) -> Self:
        import uvicorn

        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port,
                                log_level=self.log_level, lifespan="on",
                                timeout_graceful_shutdown=2)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name=f"proxy:{self.port}",
                                        daemon=True)
        self._thread.start()
        deadline = time.monotonic() + self.startup_timeout
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"the proxy on port {self.port} failed to start")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the proxy on port {self.port} did not start in "
                                   f"{self.startup_timeout:.0f} s")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
