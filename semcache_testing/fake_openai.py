"""A fake OpenAI-compatible upstream: a real HTTP server on 127.0.0.1, stdlib only.

Tests (and benchmarks, and the proxy's tests) point the ``openai`` client at it and count
the upstream calls it received, so a test can prove that a cache hit made none::

    with FakeOpenAI() as fake:
        client = openai.OpenAI(base_url=fake.base_url, api_key="sk-test")
        client.chat.completions.create(model="m", messages=[...])
        assert fake.calls["chat/completions"] == 1

By hand: ``python -m semcache_testing.fake_openai --port 8000 --delay-ms 200``.

Wire format (what the ``openai`` client parses):

- ``POST /v1/chat/completions``: answer ``"echo: <last user message>"`` (``numbered=True``
  appends `` (call N)`` so two fresh answers differ); ``n`` choices; ``max_tokens`` /
  ``max_completion_tokens`` truncate to that many words with ``finish_reason="length"``;
  ``response_format={"type": "json_object"}`` answers ``{"echo": ...}``; with ``tools``
  and ``tool_choice`` "required" (the first tool) or naming a function, the answer is a
  call of that function with arguments ``{"echo": <last user message>}``; ``stream: true``
  sends SSE chunks (a role chunk, word chunks, a finish chunk, a usage chunk when
  ``stream_options.include_usage``) ending with ``data: [DONE]``; ``logprobs: true``
  gives each word (a "token") a deterministic logprob, per chunk when streaming.
  The LLM verifier's question (``semcache.verifiers.llm``) is answered by rule, one
  ``"<i>: yes|no"`` line per candidate: yes when the candidate has the query's words in
  the query's order (case, punctuation, a/an/the/please aside); model
  ``verifier-prose`` answers ``"Probably."`` instead.
- ``POST /v1/responses``: the same echo as one ``message`` output item (streaming too);
  ``max_output_tokens`` truncates with status "incomplete"; ``background: true``
  answers a "queued" Response with no output.
- ``POST /v1/completions``: ``"echo: <prompt>"`` per prompt (a str or a list), streaming too.
- ``POST /v1/embeddings``: unit vectors derived from a hash of each input (str or token
  list); ``dimensions`` honoured (default 1536); ``encoding_format`` float or base64
  (the client's default).
- ``POST /v1/audio/transcriptions``: multipart; text ``"transcript <sha256[:16]>"`` of the
  audio bytes; ``response_format`` json, text or verbose_json.
- ``GET /v1/models``.

Error mode: a request whose model is ``fail-<status>`` (``fail-429``, ``fail-500``, ...)
gets that status with an OpenAI error body; a streamed chat request for model
``fail-midstream`` gets two chunks and then a dropped connection; ``stream_script`` replaces
every streamed answer (chat, text, Responses) with the events a test wrote, to send the
malformed, cut-short and unusual streams a real upstream can. By default error responses carry
``x-should-retry: false`` so the client does not retry and call counts stay exact
(``retry_errors=True`` lets the client's retry logic run, as against the real API).

Every request is counted per endpoint (``calls``) and recorded (``requests``), before the
configured ``delay_ms`` is slept, so counts are visible while a slow request is in flight.
"""

from __future__ import annotations

import argparse
import base64
import collections
import hashlib
import json
import math
import re
import socket
import struct
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["DROP", "ENDPOINTS", "FakeOpenAI", "fake_answer", "fake_embedding", "fake_transcript"]

#: the endpoints the server counts, as keys of ``FakeOpenAI.calls``
ENDPOINTS = ("chat/completions", "completions", "embeddings", "audio/transcriptions",
             "models")
DEFAULT_EMBEDDING_DIM = 1536
_WORD = re.compile(r"\w+|[^\w\s]")
_PIECE = re.compile(r"\S+\s*|\s+")
_FAIL = re.compile(r"^fail-(\d{3})$")
#: in a ``stream_script``: drop the connection here (no end of the chunked body)
DROP = "<drop the connection>"
_MODELS = ("gpt-4o-mini", "gpt-4o", "gpt-3.5-turbo-instruct", "text-embedding-3-small",
           "whisper-1")


def _tokens(text: str) -> int:
    """A rough, deterministic token count (words and punctuation)."""
    return len(_WORD.findall(text))


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(p.get("text", "")) for p in content
                         if isinstance(p, dict) and p.get("type") == "text")
    return ""


def fake_answer(messages: list[dict[str, Any]]) -> str:
    """The answer the server gives to a chat request (without the ``numbered`` suffix)."""
    last = next((m for m in reversed(messages) if m.get("role") == "user"), None)
    return "echo: " + (_text_of(last.get("content")) if last else "")


def fake_embedding(item: str | list[int], dim: int = DEFAULT_EMBEDDING_DIM) -> list[float]:
    """The unit vector the server returns for one input item (a text or token ids)."""
    seed = item.encode() if isinstance(item, str) else json.dumps(item).encode()
    raw = hashlib.shake_256(b"semcache.fake-embedding\0" + seed).digest(4 * dim)
    vals = [(x / 2**31) - 1.0 for x in struct.unpack(f"<{dim}I", raw)]
    norm = math.sqrt(sum(v * v for v in vals)) or 1.0
    # round-trip through float32 so float and base64 encodings give the same numbers
    return list(struct.unpack(f"<{dim}f", struct.pack(f"<{dim}f", *(v / norm for v in vals))))


#: the LLM verifier's question (semcache.verifiers.llm.QUESTION), answered by rule
_VERIFIER_ASK = "Would the answer to question A also correctly answer question B?"
_FILLER = frozenset({"a", "an", "the", "please"})


def _verifier_answer(messages: list[dict[str, Any]]) -> str | None:
    """``"<i>: yes|no"`` per candidate when asked the LLM verifier's question: yes when
    ``B<i>`` has A's words in A's order (case, punctuation, a/an/the/please aside), so a
    reversal ("km to miles" / "miles to km") is a no. None for any other request."""
    if not any(isinstance(m, dict) and m.get("role") == "system"
               and _VERIFIER_ASK in _text_of(m.get("content")) for m in messages):
        return None
    texts: dict[str, str] = {}
    for line in fake_answer(messages)[len("echo: "):].splitlines():
        tag, _, rest = line.partition(": ")
        try:
            texts[tag] = json.loads(rest)
        except ValueError:
            continue

    def words(t: str) -> list[str]:
        return [w for w in re.findall(r"[a-z0-9]+", str(t).lower()) if w not in _FILLER]

    a = words(texts.get("A", ""))
    bs = sorted((int(k[1:]), v) for k, v in texts.items() if k[1:].isdigit() and k[0] == "B")
    return "\n".join(f"{i}: {'yes' if words(b) == a else 'no'}" for i, b in bs)


def fake_transcript(audio: bytes) -> str:
    """The text the server returns for an audio file: derived from its bytes only."""
    return "transcript " + hashlib.sha256(audio).hexdigest()[:16]


class _Error(Exception):
    def __init__(self, status: int, message: str, type_: str = "invalid_request_error",
                 code: str | None = None, param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param = (
            status, message, type_, code, param)

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param,
                          "code": self.code}}


class FakeOpenAI:
    """An OpenAI-compatible HTTP server in a background thread (see the module docstring).

    ``port=0`` picks a free port. ``delay_ms`` is slept before each answer (and can be
    changed while running); ``chunk_delay_ms`` between streamed chunks. ``numbered=True``
    makes every fresh answer unique by appending the endpoint's call number.

    For the embedder's tests (one fake upstream for every test, issue #19):
    ``embedding_dim`` is the vectors' size when a request gives no ``dimensions``;
    ``embedding_scale`` multiplies them (not 1: a client must normalise);
    ``embeddings_reversed`` sends the rows in reverse order (``index`` is what counts,
    as a server may answer out of order); ``fail_next = N`` answers
    the next N requests with ``fail_status``; while ``hang`` is set, requests get no
    answer until ``release`` is set (or the server stops). ``embeddings_answer``, while
    set, is a function of the fake's own embeddings answer (a dict) that returns the body
    to send instead, so a test can send a misbehaving server's answer (a row missing or
    repeated, a NaN, ``data`` that is not a list); ``reset()`` clears it.
    ``embedding_max_tokens`` refuses (HTTP 400, as OpenAI does) a request with an input
    longer than that many (fake) tokens.

    ``stream_script``, while set, is the answer to every streamed request instead of the
    fake's own: a dict is sent as a ``data:`` event of its JSON, a str as a ``data:``
    event as it is (``"[DONE]"``, ``"{not json"``), bytes as they are (a named event);
    then the body ends cleanly, or the connection drops where the script has ``DROP``.
    ``reset()`` clears it.
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, delay_ms: float = 0.0,
                 chunk_delay_ms: float = 0.0, numbered: bool = False,
                 retry_errors: bool = False, max_recorded: int = 10_000,
                 embedding_dim: int = DEFAULT_EMBEDDING_DIM,
                 embedding_scale: float = 1.0, embeddings_reversed: bool = False,
                 embedding_max_tokens: int | None = None) -> None:
        self.embedding_dim = embedding_dim
        self.embedding_max_tokens = embedding_max_tokens
        self.embeddings_reversed = embeddings_reversed
        self.embedding_scale = embedding_scale
        self.embeddings_answer: Callable[[dict[str, Any]], Any] | None = None
        self.fail_next = 0
        self.fail_status = 503
        self.stream_script: list[Any] | None = None
        self.hang = threading.Event()
        self.release = threading.Event()
        self.host = host
        self.port = port
        self.delay_ms = delay_ms
        self.chunk_delay_ms = chunk_delay_ms
        self.numbered = numbered
        self.retry_errors = retry_errors
        self._lock = threading.Lock()
        self._calls: collections.Counter[str] = collections.Counter()
        self._requests: collections.deque[dict[str, Any]] = collections.deque(
            maxlen=max_recorded)
        self._in_flight = 0
        self._max_in_flight = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._conns: set[socket.socket] = set()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> FakeOpenAI:
        if self._server is not None:
            return self
        owner = self

        class Handler(_Handler):
            fake = owner

        server = _Server((self.host, self.port), Handler)
        server.daemon_threads = True
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"FakeOpenAI:{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.release.set()  # hung requests end
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        # keep-alive connections outlive serve_forever: close them so a stopped server
        # really stops answering (and clients see a connection error, not a hang)
        with self._lock:
            conns, self._conns = list(self._conns), set()
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/v1`` (what ``openai.OpenAI(base_url=...)`` takes)."""
        return f"http://{self.host}:{self.port}/v1"

    # ------------------------------------------------------------------ counters
    @property
    def calls(self) -> dict[str, int]:
        """Requests received per endpoint (every endpoint present, zero if none)."""
        with self._lock:
            return {e: self._calls.get(e, 0) for e in ENDPOINTS} | {
                e: n for e, n in self._calls.items() if e not in ENDPOINTS}

    @property
    def total_calls(self) -> int:
        with self._lock:
            return sum(self._calls.values())

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Every recorded request: ``{"endpoint", "body", "headers"}`` (transcriptions:
        the form fields, with ``file`` replaced by ``{"filename", "sha256", "size"}``;
        header names lower-cased)."""
        with self._lock:
            return list(self._requests)

    @property
    def inputs(self) -> list[Any]:
        """Every item the embeddings endpoint was asked to embed, in arrival order."""
        out: list[Any] = []
        for r in self.requests:
            inp = (r["body"] or {}).get("input") if r["endpoint"] == "embeddings" else None
            if isinstance(inp, str) or (isinstance(inp, list) and inp
                                        and all(isinstance(x, int) for x in inp)):
                out.append(inp)
            elif isinstance(inp, list):
                out.extend(inp)
        return out

    @property
    def in_flight(self) -> int:
        """The requests the server is handling now (a stream being sent included)."""
        with self._lock:
            return self._in_flight

    @property
    def max_in_flight(self) -> int:
        """The most requests the server was handling at once since the last reset."""
        with self._lock:
            return self._max_in_flight

    def reset(self) -> None:
        with self._lock:
            self._calls.clear()
            self._requests.clear()
            self.stream_script = None
            self.embeddings_answer = None
            self._max_in_flight = self._in_flight

    def wait_for_calls(self, endpoint: str, n: int, timeout: float = 5.0) -> bool:
        """Poll until ``calls[endpoint] >= n`` (bounded); True if reached."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.calls.get(endpoint, 0) >= n:
                return True
            time.sleep(0.005)
        return self.calls.get(endpoint, 0) >= n

    def __repr__(self) -> str:
        state = self.base_url if self.running else "stopped"
        return f"FakeOpenAI({state}, delay_ms={self.delay_ms})"

    # ------------------------------------------------------------------ internals
    def _record(self, endpoint: str, body: Any, headers: dict[str, str]) -> int:
        with self._lock:
            self._calls[endpoint] += 1
            self._requests.append({"endpoint": endpoint, "body": body, "headers": headers})
            return self._calls[endpoint]

    def _enter(self) -> None:
        with self._lock:
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)

    def _leave(self) -> None:
        with self._lock:
            self._in_flight -= 1


class _Server(ThreadingHTTPServer):
    # bursts of concurrent clients (load benchmarks) overflow the default backlog of 5
    request_queue_size = 1024

    def handle_error(self, request, client_address) -> None:  # type: ignore[no-untyped-def]
        # a client that hangs up mid-answer (an abandoned stream, a timeout test) is
        # normal traffic for a test upstream, not a traceback on stderr
        import sys

        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    # keep-alive responses written in pieces would otherwise wait ~40 ms on Nagle
    disable_nagle_algorithm = True
    fake: FakeOpenAI
    protocol_version = "HTTP/1.1"  # keep-alive, as the openai client (httpx) expects
    server_version = "FakeOpenAI/1.0"
    timeout = 60  # an idle keep-alive connection is dropped after this

    def setup(self) -> None:
        super().setup()
        # small SSE writes must not wait for delayed ACKs (Nagle): ~40 ms a chunk otherwise
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.fake._lock:
            self.fake._conns.add(self.connection)

    def finish(self) -> None:
        with self.fake._lock:
            self.fake._conns.discard(self.connection)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:  # quiet by default
        pass

    # ------------------------------------------------------------------ routing
    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        fake = self.fake
        path = self.path.split("?", 1)[0].rstrip("/")
        endpoint = path[len("/v1/"):] if path.startswith("/v1/") else path.lstrip("/")
        routes = {
            ("POST", "chat/completions"): self._chat,
            ("POST", "completions"): self._completions,
            ("POST", "embeddings"): self._embeddings,
            ("POST", "responses"): self._responses,
            ("POST", "audio/transcriptions"): self._transcriptions,
            ("GET", "models"): self._models,
        }
        fake._enter()
        try:
            try:
                raw = self._read_body()
                route = routes.get((method, endpoint))
                if route is None:
                    fake._record(endpoint, None, {k.lower(): v for k, v in self.headers.items()})
                    raise _Error(404, f"Unknown request URL: {method} {self.path}",
                                 code="unknown_url")
                body = self._parse(endpoint, raw)
                headers = {k.lower(): v for k, v in self.headers.items()}
                n = fake._record(endpoint, _recordable(body), headers)
                if fake.hang.is_set():
                    fake.release.wait(30)  # bounded: a test's client times out first
                    self.close_connection = True
                    return
                if fake.delay_ms > 0:
                    time.sleep(fake.delay_ms / 1000)
                with fake._lock:
                    failing, fake.fail_next = fake.fail_next > 0, max(fake.fail_next - 1, 0)
                if failing:
                    status = fake.fail_status
                    raise _Error(status, f"fake upstream error {status} (fail_next)",
                                 type_="server_error" if status >= 500
                                 else "invalid_request_error", code=f"fake_{status}")
                model = body.get("model") if isinstance(body, dict) else None
                m = _FAIL.match(model) if isinstance(model, str) else None
                if m:
                    status = int(m.group(1))
                    raise _Error(status, f"fake upstream error {status} (model {model!r})",
                                 type_="rate_limit_error" if status == 429 else "server_error"
                                 if status >= 500 else "invalid_request_error",
                                 code=f"fake_{status}")
                script = fake.stream_script
                if script is not None and isinstance(body, dict) and body.get("stream"):
                    self._send_script(script)
                    return
                route(body, n)
            except _Error as exc:
                self._send_json(exc.status, exc.body(), error=True)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client went away mid-answer
        finally:
            fake._leave()

    # ------------------------------------------------------------------ I/O
    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _parse(self, endpoint: str, raw: bytes) -> Any:
        if endpoint == "audio/transcriptions":
            return _multipart(self.headers.get("Content-Type", ""), raw)
        if not raw:
            return {}
        try:
            body = json.loads(raw)
        except ValueError:
            raise _Error(400, "We could not parse the JSON body of your request.") from None
        if not isinstance(body, dict):
            raise _Error(400, "The request body must be a JSON object.")
        return body

    def _send_json(self, status: int, obj: Any, *, error: bool = False) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if error and not self.fake.retry_errors:
            self.send_header("x-should-retry", "false")
        elif error:  # the client's retries wait 10 ms, not its default back-off
            self.send_header("retry-after-ms", "10")
        self.end_headers()
        self.wfile.write(data)

    def _send_text(self, text: str) -> None:
        data = text.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _send_sse(self, events: list[dict[str, Any]], *, break_after: int | None = None
                  ) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        gap = self.fake.chunk_delay_ms / 1000
        for i, ev in enumerate(events):
            if gap and i:
                time.sleep(gap)
            if break_after is not None and i == break_after:
                # drop the connection mid-body, as a crashing upstream does
                self.close_connection = True
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self._chunk(b"data: " + json.dumps(ev).encode() + b"\n\n")
        self._chunk(b"data: [DONE]\n\n")
        self._chunk(b"")

    def _send_script(self, script: list[Any]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for item in script:
            if item is DROP:
                self.close_connection = True
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if isinstance(item, bytes):
                self._chunk(item)
            else:
                data = item if isinstance(item, str) else json.dumps(item)
                self._chunk(b"data: " + data.encode() + b"\n\n")
        self._chunk(b"")

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):X}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    # ------------------------------------------------------------------ endpoints
    def _answer_suffix(self, n: int) -> str:
        return f" (call {n})" if self.fake.numbered else ""

    def _responses(self, body: dict[str, Any], n: int) -> None:
        """The Responses API: an echo of the last user input (issue #22)."""
        from semcache._calls._responses_api import key_kwargs, replay_events, sse_bytes

        inp = body.get("input")
        if not isinstance(inp, (str, list)) or not inp:
            raise _Error(400, "'input' is a required property", param="input")
        messages = key_kwargs(body)["messages"]
        text = fake_answer([m for m in messages if m.get("role") == "user"] or
                           [{"role": "user", "content": ""}]) + self._answer_suffix(n)
        text, finish = _truncate(text, body.get("max_output_tokens"))
        ident = _ident("resp", body, n)
        prompt_tokens = sum(_tokens(_text_of(m.get("content"))) + 4 for m in messages
                            if isinstance(m.get("content"), (str, list)))
        out_tokens = _tokens(text)
        value = {
            "id": ident, "object": "response", "created_at": int(time.time()),
            "status": "completed", "error": None, "incomplete_details": None,
            "instructions": body.get("instructions"), "model": _model(body),
            "output": [{"type": "message", "id": "msg_" + ident[5:], "status": "completed",
                        "role": "assistant", "content": [
                            {"type": "output_text", "text": text, "annotations": []}]}],
            "parallel_tool_calls": True, "previous_response_id":
                body.get("previous_response_id"), "temperature": body.get("temperature"),
            "tool_choice": body.get("tool_choice", "auto"), "tools": body.get("tools", []),
            "top_p": body.get("top_p"), "usage": {
                "input_tokens": prompt_tokens, "output_tokens": out_tokens,
                "total_tokens": prompt_tokens + out_tokens,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens_details": {"reasoning_tokens": 0}},
        }
        if finish == "length":  # cut at max_output_tokens, as OpenAI reports it
            value["status"] = value["output"][0]["status"] = "incomplete"
            value["incomplete_details"] = {"reason": "max_output_tokens"}
        if body.get("background"):  # accepted, not yet run: no output, no usage
            value.update(status="queued", output=[], usage=None, background=True)
        if not body.get("stream"):
            self._send_json(200, value)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for ev in replay_events(value):
            self._chunk(sse_bytes(ev))
        self._chunk(b"")

    def _chat(self, body: dict[str, Any], n: int) -> None:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _Error(400, "'messages' is a required property", param="messages")
        model = _model(body)
        text = fake_answer(messages) + self._answer_suffix(n)
        verdict = _verifier_answer(messages)
        if verdict is not None:  # model "verifier-prose" answers as no parser can read
            text = "Probably." if model == "verifier-prose" else verdict
        rf = body.get("response_format")
        if isinstance(rf, dict) and rf.get("type") in ("json_object", "json_schema"):
            text = json.dumps({"echo": text})
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        content: str | None
        content, finish = _truncate(text, limit)
        tool = _forced_tool(body)
        tool_call: dict[str, Any] | None = None
        if tool is not None:  # answer with a call of the forced tool, no content
            tool_call = {"id": f"call_{_ident('t', body, n)[2:]}", "type": "function",
                         "function": {"name": tool, "arguments": json.dumps(
                             {"echo": fake_answer(messages)[len("echo: "):]})}}
            content, finish = None, "tool_calls"
        prompt_tokens = sum(_tokens(_text_of(m.get("content"))) + 4 for m in messages
                            if isinstance(m, dict)) + 3
        choices = max(1, int(body.get("n") or 1))
        completion_tokens = _tokens(content or json.dumps(tool_call)) * choices
        usage = _usage(prompt_tokens, completion_tokens)
        ident = _ident("chatcmpl", body, n)
        created = int(time.time())
        fp = "fp_fake0001"
        logprobs = body.get("logprobs") is True  # one "token" per word, as streamed
        if body.get("stream"):
            base = {"id": ident, "object": "chat.completion.chunk", "created": created,
                    "model": model, "system_fingerprint": fp}
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            events: list[dict[str, Any]] = []

            def ev(choices_: list[dict[str, Any]]) -> dict[str, Any]:
                e = {**base, "choices": choices_}
                if include_usage:
                    e["usage"] = None
                return e

            for i in range(choices):
                events.append(ev([{"index": i, "delta": {
                    "role": "assistant", "content": None if tool_call else ""},
                    "logprobs": None, "finish_reason": None}]))
            for piece in _PIECE.findall(content or ""):
                lp = {"content": [_logprob(piece)], "refusal": None} if logprobs else None
                for i in range(choices):
                    events.append(ev([{"index": i, "delta": {"content": piece},
                                       "logprobs": lp, "finish_reason": None}]))
            if tool_call is not None:  # the name first, then the arguments in pieces
                args = tool_call["function"]["arguments"]
                head = {"index": 0, "id": tool_call["id"], "type": "function",
                        "function": {"name": tool_call["function"]["name"], "arguments": ""}}
                deltas = [head] + [{"index": 0, "function": {"arguments": args[k:k + 8]}}
                                   for k in range(0, len(args), 8)]
                for d in deltas:
                    for i in range(choices):
                        events.append(ev([{"index": i, "delta": {"tool_calls": [d]},
                                           "logprobs": None, "finish_reason": None}]))
            for i in range(choices):
                events.append(ev([{"index": i, "delta": {}, "logprobs": None,
                                   "finish_reason": finish}]))
            if include_usage:
                events.append({**base, "choices": [], "usage": usage})
            self._send_sse(events, break_after=2 if model == "fail-midstream" else None)
            return
        self._send_json(200, {
            "id": ident, "object": "chat.completion", "created": created, "model": model,
            "system_fingerprint": fp, "usage": usage,
            "choices": [{"index": i, "message": {
                "role": "assistant", "content": content, "refusal": None,
                **({"tool_calls": [tool_call]} if tool_call else {})},
                "logprobs": {"content": [_logprob(p) for p in _PIECE.findall(content or "")],
                             "refusal": None} if logprobs else None,
                "finish_reason": finish} for i in range(choices)],
        })

    def _completions(self, body: dict[str, Any], n: int) -> None:
        prompt = body.get("prompt")
        if isinstance(prompt, str):
            prompts = [prompt]
        elif isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
            prompts = prompt
        elif isinstance(prompt, list) and prompt:  # token ids
            prompts = [json.dumps(prompt)]
        else:
            raise _Error(400, "'prompt' is a required property", param="prompt")
        model = _model(body)
        per = max(1, int(body.get("n") or 1))
        texts = [_truncate("echo: " + p + self._answer_suffix(n), body.get("max_tokens"))
                 for p in prompts]
        usage = _usage(sum(_tokens(p) for p in prompts),
                       sum(_tokens(t) for t, _ in texts) * per)
        ident = _ident("cmpl", body, n)
        created = int(time.time())
        choices = [(j * per + k, t, f) for j, (t, f) in enumerate(texts) for k in range(per)]
        if body.get("stream"):
            base = {"id": ident, "object": "text_completion", "created": created,
                    "model": model}
            events = []
            for idx, t, f in choices:
                pieces = _PIECE.findall(t) or [""]
                for p in pieces:
                    events.append({**base, "choices": [{"index": idx, "text": p,
                                                        "logprobs": None, "finish_reason": None}]})
                events.append({**base, "choices": [{"index": idx, "text": "", "logprobs": None,
                                                    "finish_reason": f}]})
            if (body.get("stream_options") or {}).get("include_usage"):
                events.append({**base, "choices": [], "usage": usage})
            self._send_sse(events)
            return
        self._send_json(200, {
            "id": ident, "object": "text_completion", "created": created, "model": model,
            "system_fingerprint": "fp_fake0001", "usage": usage,
            "choices": [{"index": idx, "text": t, "logprobs": None, "finish_reason": f}
                        for idx, t, f in choices],
        })

    def _embeddings(self, body: dict[str, Any], n: int) -> None:
        inp = body.get("input")
        if isinstance(inp, str):
            items: list[Any] = [inp]
        elif isinstance(inp, list) and inp and all(isinstance(x, int) for x in inp):
            items = [inp]  # one token-id list
        elif isinstance(inp, list) and inp:
            items = inp
        else:
            raise _Error(400, "'input' must be a non-empty string or array", param="input")
        limit = self.fake.embedding_max_tokens
        for i, item in enumerate(items):
            used = _tokens(item) if isinstance(item, str) else len(item)
            if limit is not None and used > limit:  # as OpenAI refuses an over-long input
                raise _Error(400, f"This model's maximum context length is {limit} tokens, "
                             f"however you requested {used} tokens (input {i})",
                             param="input")
        dim = body.get("dimensions") or self.fake.embedding_dim
        if not isinstance(dim, int) or isinstance(dim, bool) or not 1 <= dim <= 8192:
            raise _Error(400, f"'dimensions' must be an integer in [1, 8192], got {dim!r}",
                         param="dimensions")
        b64 = body.get("encoding_format") == "base64"
        data = []
        scale = self.fake.embedding_scale
        for i, item in enumerate(items):
            vec = fake_embedding(item, dim)
            if scale != 1.0:
                vec = [v * scale for v in vec]
            emb: Any = (base64.b64encode(struct.pack(f"<{dim}f", *vec)).decode() if b64
                        else vec)
            data.append({"object": "embedding", "index": i, "embedding": emb})
        if self.fake.embeddings_reversed:  # servers may answer out of order
            data.reverse()
        tokens = sum(_tokens(x) if isinstance(x, str) else len(x) for x in items)
        answer: Any = {"object": "list", "data": data, "model": _model(body),
                       "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
        if self.fake.embeddings_answer is not None:
            answer = self.fake.embeddings_answer(answer)
        self._send_json(200, answer)

    def _transcriptions(self, body: dict[str, Any], n: int) -> None:
        audio = body.get("file")
        if not isinstance(audio, _File):
            raise _Error(400, "'file' is a required property", param="file")
        text = fake_transcript(audio.data) + self._answer_suffix(n)
        seconds = round(len(audio.data) / 32000, 3)  # as if 16 kHz 16-bit mono
        fmt = body.get("response_format") or "json"
        if fmt == "text":
            self._send_text(text)
        elif fmt == "verbose_json":
            self._send_json(200, {"task": "transcribe", "language": body.get("language")
                                  or "english", "duration": seconds, "text": text,
                                  "segments": [{"id": 0, "seek": 0, "start": 0.0,
                                                "end": seconds, "text": text, "tokens": [],
                                                "temperature": 0.0, "avg_logprob": -0.1,
                                                "compression_ratio": 1.0,
                                                "no_speech_prob": 0.0}]})
        else:
            self._send_json(200, {"text": text, "usage": {"type": "duration",
                                                          "seconds": seconds}})

    def _models(self, body: Any, n: int) -> None:
        self._send_json(200, {"object": "list", "data": [
            {"id": m, "object": "model", "created": 1700000000, "owned_by": "fake"}
            for m in _MODELS]})


# ---------------------------------------------------------------------- helpers
class _File:
    def __init__(self, filename: str | None, data: bytes) -> None:
        self.filename, self.data = filename, data


def _multipart(content_type: str, raw: bytes) -> dict[str, Any]:
    m = re.search(r'boundary="?([^";]+)"?', content_type)
    if not content_type.startswith("multipart/form-data") or not m:
        raise _Error(400, "expected a multipart/form-data body")
    sep = b"--" + m.group(1).encode()
    out: dict[str, Any] = {}
    for part in raw.split(sep)[1:]:
        if part.startswith(b"--"):
            break
        head, _, data = part.partition(b"\r\n\r\n")
        if data.endswith(b"\r\n"):
            data = data[:-2]
        disp = next((ln for ln in head.decode("utf-8", "replace").split("\r\n")
                     if ln.lower().startswith("content-disposition")), "")
        name = re.search(r'\bname="([^"]*)"', disp)
        filename = re.search(r'\bfilename="([^"]*)"', disp)
        if not name:
            continue
        if filename is not None:
            out[name.group(1)] = _File(filename.group(1), data)
        else:
            value = data.decode()
            key = name.group(1)
            if key.endswith("[]"):
                out.setdefault(key[:-2], []).append(value)
            else:
                out[key] = value
    return out


def _recordable(body: Any) -> Any:
    if isinstance(body, dict) and any(isinstance(v, _File) for v in body.values()):
        return {k: ({"filename": v.filename, "sha256": hashlib.sha256(v.data).hexdigest(),
                     "size": len(v.data)} if isinstance(v, _File) else v)
                for k, v in body.items()}
    return body


def _forced_tool(body: dict[str, Any]) -> str | None:
    """The function a request forces (``tool_choice`` "required" or a named function)."""
    tools = body.get("tools")
    choice = body.get("tool_choice")
    if not isinstance(tools, list) or not tools:
        return None
    if isinstance(choice, dict):
        return (choice.get("function") or {}).get("name")
    if choice == "required":
        return (tools[0].get("function") or {}).get("name")
    return None


def _model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _Error(400, "'model' is a required property", param="model")
    return model


def _truncate(text: str, limit: Any) -> tuple[str, str]:
    if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0:
        words = text.split(" ")
        if len(words) > limit:
            return " ".join(words[:limit]), "length"
    return text, "stop"


def _logprob(token: str) -> dict[str, Any]:
    """A deterministic logprob entry for one streamed piece of an answer."""
    lp = -(int.from_bytes(hashlib.sha256(token.encode()).digest()[:2], "little") / 65536)
    return {"token": token, "logprob": round(lp, 6), "bytes": list(token.encode()),
            "top_logprobs": []}


def _usage(prompt: int, completion: int) -> dict[str, Any]:
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                          "accepted_prediction_tokens": 0,
                                          "rejected_prediction_tokens": 0}}


def _ident(prefix: str, body: Any, n: int) -> str:
    h = hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()
    return f"{prefix}-{h[:12]}{n:06d}"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m semcache_testing.fake_openai",
                                description="A fake OpenAI-compatible server for tests.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--delay-ms", type=float, default=0.0,
                   help="sleep this long before each answer")
    p.add_argument("--chunk-delay-ms", type=float, default=0.0,
                   help="sleep this long between streamed chunks")
    p.add_argument("--numbered", action="store_true",
                   help="append the call number to answers so fresh answers differ")
    a = p.parse_args(argv)
    fake = FakeOpenAI(host=a.host, port=a.port, delay_ms=a.delay_ms,
                      chunk_delay_ms=a.chunk_delay_ms, numbered=a.numbered).start()
    print(f"FakeOpenAI listening on {fake.base_url} (Ctrl-C to stop)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()
        print(f"calls: {json.dumps(fake.calls)}", flush=True)


if __name__ == "__main__":
    main()
