"""A request body that stops arriving: a 408 after ``semcache_settings.body_timeout``
seconds without a new part, never a connection held open for as long as the client
keeps it (a Content-Length longer than what is sent waited forever before)."""

from __future__ import annotations

import json
import socket
import time

import pytest

from semcache import ConfigError
from semcache.proxy.config import parse_config
from semcache.proxy.limits import DEFAULT_BODY_TIMEOUT
from semcache_testing.fake_openai import FakeOpenAI

from .proxy_helpers import MASTER, config_dict

BODY = json.dumps({"model": "chat", "messages": [{"role": "user", "content": "hi"}]}).encode()
HEAD = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
        + MASTER.encode() + b"\r\nContent-Type: application/json\r\n")


@pytest.fixture(scope="module")
def fake():
    with FakeOpenAI(numbered=True) as f:
        yield f


def _exchange(port: int, parts: list[bytes], pause: float = 0.0,
              wait: float = 30.0) -> tuple[bytes, float]:
    """Send ``parts`` (``pause`` seconds apart), then read until the server closes or a
    whole response is in; the response and the seconds from the last part to it."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as s:
        for i, part in enumerate(parts):
            if i:
                time.sleep(pause)
            s.sendall(part)
        sent = time.monotonic()
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
            head, sep, body = data.partition(b"\r\n\r\n")
            length = [h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")]
            if sep and length and len(body) >= int(length[0].split(b":")[1]):
                break
        return data, time.monotonic() - sent


def test_a_body_shorter_than_its_content_length_gets_a_408(proxies):
    proxy = proxies.start(semcache_settings={**config_dict("")["semcache_settings"],
                                             "body_timeout": 0.5})
    raw, waited = _exchange(proxy.port, [HEAD + b"Content-Length: %d\r\n\r\n" % (len(BODY) + 50)
                                         + BODY])
    status, _, rest = raw.partition(b"\r\n")
    assert status.startswith(b"HTTP/1.1 408"), raw[:200]
    err = json.loads(rest.partition(b"\r\n\r\n")[2])["error"]
    assert "body_timeout" in err["message"] and f"{len(BODY)} bytes" in err["message"]
    assert err["code"] == "request_timeout"
    assert 0.4 < waited < 20  # the server's deadline answered, not the client's socket


def test_a_body_sent_in_slow_parts_within_the_timeout_is_served(proxies):
    """The deadline is per part (nginx's client_body_timeout), not for the whole body:
    three parts 1.2 s apart under a 2 s timeout take 2.4 s in all and are answered."""
    proxy = proxies.start(semcache_settings={**config_dict("")["semcache_settings"],
                                             "body_timeout": 2.0})
    third = len(BODY) // 3
    parts = [HEAD + b"Content-Length: %d\r\n\r\n" % len(BODY) + BODY[:third],
             BODY[third:2 * third], BODY[2 * third:]]
    raw, _ = _exchange(proxy.port, parts, pause=1.2)
    assert raw.startswith(b"HTTP/1.1 200"), raw[:300]
    assert json.loads(raw.partition(b"\r\n\r\n")[2])["choices"]


@pytest.mark.parametrize("value", [0, -1, "soon", float("nan"), True])
def test_body_timeout_must_be_a_positive_number(value):
    cfg = config_dict("http://127.0.0.1:1/v1")
    cfg["semcache_settings"]["body_timeout"] = value
    with pytest.raises(ConfigError, match="semcache_settings.body_timeout"):
        parse_config(cfg)


def test_the_default_body_timeout_is_nginxs():
    cfg = parse_config(config_dict("http://127.0.0.1:1/v1"))
    assert cfg.limits.body_timeout == DEFAULT_BODY_TIMEOUT == 60.0
