"""Reliability: concurrency, faults, bad input, isolation, tamper and durability.

The figures these tests produce (operations, faults, inputs, entries lost) are what the
README's "Guarantees" section states.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
import uuid

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from semcache import Cache, SemcacheError
from semcache.exact.memory import MemoryStore
from semcache.indexes.faiss import FaissIndex
from semcache_testing.servers import AzuriteServer, GCSServer, HungServer, RedisStackServer

THREADS = 8
OPS = 60  # per thread and per task


def ask(q, **kw):
    return dict(model="m", messages=[{"role": "user", "content": q}], **kw)


# ---------------------------------------------------------------- backends under test
@pytest.fixture(params=["local", "disk", "faiss-semantic", "qdrant-semantic",
                        "redis-semantic", "redis", "redis-cluster", "s3", "gcs", "azure_blob"])
def backend(request, tmp_path, minilm):
    kind = request.param
    if kind == "local":
        return {"type": "local"}
    if kind == "disk":
        return {"type": "disk", "disk_cache_dir": str(tmp_path)}
    if kind == "faiss-semantic":
        # threshold 1.0: only the exact text may match, so the check below stays exact
        return {"type": "faiss-semantic", "embedder": minilm, "similarity_threshold": 1.0}
    if kind == "qdrant-semantic":
        return {"type": "qdrant-semantic", "embedder": minilm, "similarity_threshold": 1.0,
                "qdrant_path": str(tmp_path / "qdrant")}
    if kind == "redis-semantic":
        return {"type": "redis-semantic", "embedder": minilm, "similarity_threshold": 1.0,
                "redis_url": request.getfixturevalue("redis_stack_url"),
                "redis_semantic_cache_index_name": "rel" + tmp_path.name[-12:].replace(
                    "_", "")}
    if kind == "redis":
        return {"type": "redis", "redis_url": request.getfixturevalue("redis_stack_url")}
    if kind == "redis-cluster":
        return {"type": "redis",
                "redis_startup_nodes": request.getfixturevalue("redis_cluster_nodes")}
    if kind == "s3":
        return {"type": "s3", "s3_bucket_name": "semcache-rel", "s3_create_bucket": True,
                "s3_endpoint_url": request.getfixturevalue("s3_endpoint"),
                "s3_region_name": "us-east-1", "s3_aws_access_key_id": "t",
                "s3_aws_secret_access_key": "t"}
    if kind == "gcs":
        return {"type": "gcs", "gcs_bucket_name": "semcache-rel", "gcs_create_bucket": True,
                "gcs_endpoint_url": request.getfixturevalue("gcs_endpoint")}
    return {"type": "azure_blob", "azure_blob_container": "semcache-rel",
            "azure_create_container": True,
            "azure_connection_string": request.getfixturevalue("azurite_connection_string")}


def _value(owner: int, key: int, version: int) -> dict:
    body = f"{owner}/{key}/{version}"
    return {"body": body, "check": hash(body) & 0xFFFFFFFF}


def _intact(v: dict) -> bool:
    return v["check"] == hash(v["body"]) & 0xFFFFFFFF


def _worker_plan(seed: int):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 5, OPS).tolist(), rng.integers(0, 6, OPS).tolist()


def test_threads_hammering_one_cache(backend):
    """8 threads, each owning a namespace: mixed get/add/delete/flush/TTL; nothing
    raises, no write is lost, no entry is torn, namespaces never mix, stats add up."""
    run = uuid.uuid4().hex[:6]
    cache = Cache(**backend, namespace=f"rel{run}")
    final: dict[int, dict[int, dict | None]] = {}
    errors: list[BaseException] = []
    reads = [0]
    lock = threading.Lock()

    def work(t: int) -> None:
        ns = f"rel{run}t{t}"
        state: dict[int, dict | None] = {}
        ops, keys = _worker_plan(t)
        try:
            for i, (op, k) in enumerate(zip(ops, keys)):
                req = ask(f"question {k} of thread {t}", cache={"namespace": ns})
                if op in (0, 1):  # write a new version
                    v = _value(t, k, i)
                    cache.add_cache(v, **req)
                    state[k] = v
                elif op == 2:  # read: either absent or exactly the last version written
                    got = cache.get_cache(**req)
                    with lock:
                        reads[0] += 1
                    assert got is None or _intact(got), got  # never torn
                    assert got == state.get(k), (got, state.get(k))  # never lost
                elif op == 3:
                    cache.delete([cache.get_cache_key(**req)])
                    state[k] = None
                else:  # a short TTL write, then the namespace flush
                    cache.add_cache(_value(t, k, i), **ask(f"ttl {k}", cache={
                        "namespace": ns, "ttl": 0.5}))
                    if i % 20 == 19:
                        cache.flush(ns)
                        state = dict.fromkeys(state)
            final[t] = state
        except BaseException as exc:  # re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(THREADS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    try:
        assert not errors, errors[0]
        lost = 0
        for t, state in final.items():
            for k, v in state.items():
                got = cache.get_cache(**ask(f"question {k} of thread {t}",
                                            cache={"namespace": f"rel{run}t{t}"}))
                lost += got != v
        assert lost == 0
        s = cache.stats()
        assert s["errors_total"] == 0
        assert s["lookups"] == s["exact_hits"] + s["semantic_hits"] + s["misses"]
    finally:
        for t in range(THREADS):
            cache.flush(f"rel{run}t{t}")
        cache.close()


def test_async_tasks_hammering_one_cache(backend):
    run = uuid.uuid4().hex[:6]
    cache = Cache(**backend, namespace=f"arel{run}")

    async def work(t: int) -> int:
        ns = f"arel{run}t{t}"
        state: dict[int, dict | None] = {}
        ops, keys = _worker_plan(100 + t)
        for i, (op, k) in enumerate(zip(ops, keys)):
            req = ask(f"question {k} of task {t}", cache={"namespace": ns})
            if op in (0, 1, 4):
                v = _value(t, k, i)
                await cache.async_add_cache(v, **req)
                state[k] = v
            elif op == 2:
                got = await cache.async_get_cache(**req)
                assert got is None or got == state.get(k)
            else:
                await cache.adelete([cache.get_cache_key(**req)])
                state[k] = None
        lost = 0
        for k, v in state.items():
            lost += (await cache.async_get_cache(**ask(f"question {k} of task {t}",
                                                       cache={"namespace": ns}))) != v
        await cache.aflush(ns)
        return lost

    async def main() -> list[int]:
        return await asyncio.gather(*(work(t) for t in range(THREADS)))

    try:
        assert asyncio.run(main()) == [0] * THREADS
        assert cache.stats()["errors_total"] == 0
    finally:
        cache.close()


# ---------------------------------------------------------------- many writers, one key
WRITERS, SHARED_KEYS, ROUNDS = 4, 5, 15


class _Lines:
    """A writer process's output lines, read by a thread so that every wait is bounded."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc
        self._q: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._q.put(line.strip())
        self._q.put(None)  # the writer exited

    def expect(self, word: str, timeout: float = 120.0) -> str:
        line = self._q.get(timeout=timeout)
        assert line is not None and line.split(" ", 1)[0] == word, (word, line)
        return line[len(word):].strip()

    def poll(self, word: str) -> str | None:
        try:
            line = self._q.get_nowait()
        except queue.Empty:
            return None
        assert line is not None and line.split(" ", 1)[0] == word, (word, line)
        return line[len(word):].strip()

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()


def _spec(kind, tmp_path, request):
    ns = "w" + uuid.uuid4().hex[:8]
    if kind == "redis":
        return {"type": "redis", "namespace": ns,
                "redis_url": request.getfixturevalue("redis_stack_url")}
    return {"type": "faiss-semantic", "namespace": ns, "disk_cache_dir": str(tmp_path / "c")}


def _ends_on_a_last_write(cache, reports):
    """Every key holds a whole value of its own, and one that some writer wrote last
    to it: a writer's earlier writes to a key came before its last one."""
    from tests.writers_support import last_writes, problem
    from tests.writers_support import request as req

    last = last_writes(reports)
    for k in range(SHARED_KEYS):
        got = cache.get_cache(**req(k))
        assert problem(got, k) is None, problem(got, k)
        assert got["seq"] == last.get((got["writer"], k)), \
            f"key {k} ends with {got['writer']}/{got['seq']}, no writer's last write"


@pytest.mark.parametrize("kind", ["faiss-semantic", "redis"])
def test_many_threads_on_the_same_keys(kind, tmp_path, request):
    """The same in one process: 4 threads of one Cache write their own values to the
    same 5 keys while the main thread reads them."""
    from tests.writers_support import open_cache, problem, value, write_rounds
    from tests.writers_support import request as req

    cache = open_cache(_spec(kind, tmp_path, request))
    for k in range(SHARED_KEYS):
        cache.add_cache(value(-1, k, 0), **req(k))
    reports: dict[int, dict] = {}
    errors: list[BaseException] = []

    def work(w: int) -> None:
        try:
            reports[w] = write_rounds(cache, w, SHARED_KEYS, ROUNDS)
        except BaseException as exc:  # re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(WRITERS)]
    try:
        for th in threads:
            th.start()
        deadline = time.monotonic() + 300
        while any(th.is_alive() for th in threads):  # read while they write
            assert time.monotonic() < deadline, "writers did not finish"
            for k in range(SHARED_KEYS):
                got = cache.get_cache(**req(k))
                assert problem(got, k) is None, problem(got, k)
        assert not errors, errors[0]
        assert all(r["anomalies"] == [] for r in reports.values()), reports
        _ends_on_a_last_write(cache, reports)
        assert cache.stats()["errors_total"] == 0
    finally:
        for th in threads:
            th.join(timeout=60)
        cache.flush()
        cache.close()


@pytest.mark.parametrize("kind", ["faiss-semantic", "redis"])
def test_many_writers_on_the_same_keys(kind, tmp_path, request):
    """4 processes write their own values to the same 5 keys, 15 rounds each, while this
    process reads them: every read is a whole value of its key (never torn, never
    another key's); each key ends holding one writer's last write to it; then, with
    the writes ordered (one acknowledged before the next begins), the last one wins,
    at once and after the store is reopened. On the embedded default with a persisted
    folder, and on Redis."""
    from tests.writers_support import open_cache, problem, value
    from tests.writers_support import request as req

    spec = _spec(kind, tmp_path, request)
    cache = open_cache(spec)
    for k in range(SHARED_KEYS):  # every key holds a value before the writers start
        cache.add_cache(value(-1, k, 0), **req(k))
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [root, *filter(None, [os.environ.get("PYTHONPATH")])])}
    procs = [subprocess.Popen(
        [sys.executable, "-m", "tests.writers_support", json.dumps(spec), str(w),
         str(SHARED_KEYS), str(ROUNDS)], cwd=root, env=env, text=True,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE) for w in range(WRITERS)]
    try:
        lines = [_Lines(p) for p in procs]
        for line in lines:
            line.expect("ready")
        for line in lines:
            line.send("go")
        reports: dict[int, dict] = {}
        reads, deadline = 0, time.monotonic() + 300
        while len(reports) < WRITERS:  # read while they write
            assert time.monotonic() < deadline, "writers did not finish"
            for k in range(SHARED_KEYS):
                got = cache.get_cache(**req(k))
                reads += 1
                assert problem(got, k) is None, problem(got, k)
            for w, line in enumerate(lines):
                if w not in reports and (done := line.poll("done")) is not None:
                    reports[w] = json.loads(done)
        assert reads >= SHARED_KEYS
        for rep in reports.values():
            assert rep["anomalies"] == [] and rep["errors"] == 0, rep
            assert len(rep["written"]) == SHARED_KEYS * ROUNDS
        _ends_on_a_last_write(cache, reports)

        # ordered: each write acknowledged before the next begins, writers in turn
        order, seq = random.Random(0), 10_000
        expected = {}
        for k in range(SHARED_KEYS):
            for w in order.sample(range(WRITERS), WRITERS):
                lines[w].send(f"write {k} {seq}")
                lines[w].expect("ok")
                assert cache.get_cache(**req(k)) == value(w, k, seq)
                expected[k] = value(w, k, seq)
                seq += 1
        for line in lines:
            line.send("quit")
        for p in procs:
            assert p.wait(timeout=60) == 0
        assert all(cache.get_cache(**req(k)) == expected[k] for k in range(SHARED_KEYS))
        assert cache.stats()["errors_total"] == 0
        cache.close()
        cache = open_cache(spec)  # what was stored is what a new process finds
        assert all(cache.get_cache(**req(k)) == expected[k] for k in range(SHARED_KEYS))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
            for f in (p.stdin, p.stdout):
                if f is not None:
                    f.close()
        cache.flush()
        cache.close()


# ---------------------------------------------------------------- faults
@pytest.fixture
def own_redis():
    server = RedisStackServer().start()
    yield server
    server.stop()


def test_redis_killed_mid_run_then_restarted(own_redis, caplog):
    cache = Cache(type="redis", redis_url=own_redis.url, socket_timeout=0.5,
                  socket_connect_timeout=0.5)
    stored = [cache.add_cache({"n": i}, **ask(f"q{i}")) for i in range(20)]
    own_redis.kill()
    with caplog.at_level(logging.WARNING, logger="semcache"):
        t = time.monotonic()
        for i in range(20):  # the LLM call would go on: every lookup is a plain miss
            hit, meta = cache.lookup_with_metadata(**ask(f"q{i}"))
            assert hit is None and meta["errors"]
        assert time.monotonic() - t < 20  # bounded by the timeouts, not hanging
    warnings = [r for r in caplog.records if "failed" in r.getMessage()]
    assert len(warnings) == 1  # logged once per burst, not per call
    assert cache.stats()["errors"]["store"] == 20
    own_redis.start()
    deadline = time.monotonic() + 20
    while cache.lookup(**ask("q0")) is None and time.monotonic() < deadline:
        time.sleep(0.1)  # the client reconnects on its own
    assert all(cache.lookup(**ask(f"q{i}")).key == stored[i] for i in range(20))
    cache.close()


@pytest.mark.parametrize("kind", ["gcs", "azure"])
def test_blob_server_killed_then_restarted(kind):
    server = (GCSServer() if kind == "gcs" else AzuriteServer()).start()
    try:
        params = ({"type": "gcs", "gcs_bucket_name": "semcache-kill", "gcs_create_bucket": True,
                   "gcs_endpoint_url": server.url, "gcs_timeout": 1.0} if kind == "gcs" else
                  {"type": "azure_blob", "azure_blob_container": "semcache-kill",
                   "azure_create_container": True, "azure_timeout": 1.0,
                   "azure_connection_string": server.connection_string})
        cache = Cache(**params)
        cache.add_cache({"kept": True}, **ask("q"))
        # Azurite keeps its metadata in memory and saves it on a timer, so a SIGKILL
        # loses the emulator's own recent writes (a real account would not): stop it
        server.kill() if kind == "gcs" else server.stop()
        assert cache.lookup(**ask("q")) is None
        assert cache.add_cache({"x": 1}, **ask("other")) is None
        assert cache.stats()["errors"]["store"] == 2
        server.start()
        deadline = time.monotonic() + 20
        while cache.lookup(**ask("q")) is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert cache.get_cache(**ask("q")) == {"kept": True}  # nothing stored was lost
        cache.close()
    finally:
        server.stop()


@pytest.mark.parametrize("kind", ["redis", "s3", "gcs"])
def test_a_server_that_never_answers_is_cut_off_by_the_timeout(kind):
    with HungServer() as hung:
        params = {
            "redis": {"type": "redis", "host": "127.0.0.1", "port": hung.port,
                      "socket_timeout": 0.5, "socket_connect_timeout": 0.5},
            "s3": {"type": "s3", "s3_bucket_name": "b", "s3_endpoint_url": hung.url,
                   "s3_region_name": "us-east-1", "s3_aws_access_key_id": "t",
                   "s3_aws_secret_access_key": "t", "s3_timeout": 0.5},
            "gcs": {"type": "gcs", "gcs_bucket_name": "b", "gcs_endpoint_url": hung.url,
                    "gcs_timeout": 0.5},
        }[kind]
        cache = Cache(**params)
        t = time.monotonic()
        hit, meta = cache.lookup_with_metadata(**ask("q"))
        assert hit is None and meta["errors"]
        assert time.monotonic() - t < 5


# ---------------------------------------------------------------- bad input
text = st.one_of(st.text(max_size=50), st.text(alphabet=st.characters(
    blacklist_categories=()), max_size=20), st.just("x" * 200_000), st.just(""))
odd = st.one_of(st.none(), st.floats(), st.integers(), st.booleans(), text,
                st.binary(max_size=20), st.builds(object), st.sets(st.integers(), max_size=3),
                st.lists(st.integers(), max_size=3))
content = st.one_of(text, st.lists(st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": text}),
    st.fixed_dictionaries({"type": st.just("image_url"),
                           "image_url": st.fixed_dictionaries({"url": text})}),
    st.dictionaries(st.text(max_size=5), odd, max_size=3)), max_size=3), odd)
message = st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "system",
                                                          "tool"]), "content": content},
                                optional={"tool_calls": st.lists(st.dictionaries(
                                    st.text(max_size=5), odd, max_size=2), max_size=2)})
request = st.fixed_dictionaries(
    {"model": st.one_of(st.text(max_size=10), odd),
     "messages": st.one_of(st.lists(message, max_size=4), odd)},
    optional={"temperature": odd, "tools": st.lists(st.dictionaries(
        st.text(max_size=5), odd, max_size=2), max_size=2), "seed": odd, "stop": odd,
        "user": odd})

@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(request)
def test_generated_requests_never_crash_the_cache(minilm_session_cache, req):
    """Either a normal result or a SemcacheError that says what is wrong."""
    cache = minilm_session_cache
    try:
        cache.add_cache({"a": 1}, **req)
        cache.lookup(**req)
    except SemcacheError as exc:
        assert str(exc)


@pytest.fixture(scope="module")
def minilm_session_cache(minilm):
    return Cache(type="faiss-semantic", embedder=minilm, namespace="fuzz")


# ---------------------------------------------------------------- isolation
ops = st.lists(st.tuples(st.sampled_from(["add", "delete", "flush", "update_ttl"]),
                         st.integers(0, 4)), max_size=25)


@settings(max_examples=40, deadline=None)
@given(ops)
def test_nothing_done_under_one_namespace_shows_under_another(minilm_isolation, seq):
    a, b = minilm_isolation
    a.flush()
    b.flush()
    b.add_cache({"b": 0}, **ask("What is the capital of France?"))
    for op, k in seq:
        q = ask(["What is the capital of France?", "Capital city of France?",
                 "How tall is Everest?", "Who wrote Hamlet?", "France capital"][k])
        if op == "add":
            a.add_cache({"a": k}, **q)
        elif op == "delete":
            a.delete([a.get_cache_key(**q)])
        elif op == "flush":
            a.flush()
        else:
            a.update_ttl(a.get_cache_key(**q), 60)
        for text in ("What is the capital of France?", "France capital",
                     "Capital city of France?"):
            hit = b.lookup(**ask(text))
            assert hit is None or hit.value == {"b": 0}
        assert b.get_cache(**ask("What is the capital of France?")) == {"b": 0}


@pytest.fixture(scope="module")
def minilm_isolation(minilm):
    store, index = MemoryStore(), FaissIndex()  # one store and index shared by both
    a = Cache(type=None, store=store, index=index, embedder=minilm, namespace="tenant-a",
              similarity_threshold=0.5)
    b = Cache(type=None, store=store, index=index, embedder=minilm, namespace="tenant-b",
              similarity_threshold=0.5)
    return a, b


# ---------------------------------------------------------------- tamper, code execution
def test_stored_bytes_are_json_on_every_backend(backend):
    cache = Cache(**backend, namespace="scan" + uuid.uuid4().hex[:6])
    try:
        key = cache.add_cache({"answer": "x", "n": [1, 2.5, None]}, **ask("q"))
        raw = cache.store.get(key)
        assert raw is not None and b"\x80\x04" not in raw and b"\x80\x05" not in raw
        record = json.loads(raw)
        assert record["value"] == {"answer": "x", "n": [1, 2.5, None]}
    finally:
        cache.flush()
        cache.close()


def test_signed_redis_rejects_a_value_modified_in_the_server(redis_stack_url):
    import redis

    cache = Cache(type="redis", redis_url=redis_stack_url, signing_key="s" * 32,
                  namespace="sig" + uuid.uuid4().hex[:6])
    try:
        key = cache.add_cache({"answer": "safe"}, **ask("q"))
        r = redis.Redis.from_url(redis_stack_url)
        r.set(key, r.get(key).replace(b"safe", b"evil"))
        r.close()
        assert cache.lookup(**ask("q")) is None
        assert cache.stats()["integrity_rejections"] == 1
    finally:
        cache.flush()
        cache.close()


# ---------------------------------------------------------------- durability
HASHING = """
import numpy as np
from semcache.embedders.base import Embedder


class Hashing(Embedder):
    model_id = "hashing-test"
    dim = 16

    def _embed(self, texts):
        import hashlib
        return np.stack([np.random.default_rng(int(hashlib.sha256(t.encode()).hexdigest()[:8],
                                                   16)).standard_normal(16) for t in texts])
"""

WRITER = """
import sys
from hashing import Hashing
from semcache import Cache

c = Cache(type="faiss-semantic", disk_cache_dir=sys.argv[1], embedder=Hashing())
i = 0
while True:
    c.add_cache({"n": i}, model="m", messages=[{"role": "user", "content": f"q{i}"}])
    print(i, flush=True)
    i += 1
"""

CHECKER = """
import sys
from hashing import Hashing
from semcache import Cache

c = Cache(type="faiss-semantic", disk_cache_dir=sys.argv[1], embedder=Hashing())
n = int(sys.argv[2])
missing = [i for i in range(n) if c.get_cache(model="m", messages=[
    {"role": "user", "content": f"q{i}"}]) != {"n": i}]
stored = sum(1 for _ in c.store._cache.iterkeys())
print(len(missing), c.index.count() >= n, c.index.count() <= stored)
"""


def test_disk_cache_and_index_survive_sigkill_mid_writes(tmp_path):
    (tmp_path / "hashing.py").write_text(HASHING)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.getcwd()])}
    data = tmp_path / "cache"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(data)],
                            stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    done = 0
    for _line in proc.stdout:
        done += 1  # a printed line is a completed add_cache (store and index)
        if done >= 150:
            break
    proc.send_signal(signal.SIGKILL)  # in the middle of the next write
    proc.wait()
    proc.stdout.close()
    out = subprocess.run([sys.executable, "-c", CHECKER, str(data), str(done)],
                         capture_output=True, text=True, env=env, check=True).stdout.split()
    # every completed entry is there, and the index never refers to more than the store
    assert out == ["0", "True", "True"], out


# ---------------------------------------------------------------- malformed stored values
#: a chat completion as the library stores it (``model_dump(mode="json")``)
CHAT_VALUE = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
              "choices": [{"index": 0, "finish_reason": "stop", "message": {
                  "role": "assistant", "content": "the stored answer"}}]}
CHAT_KIND = "openai.types.chat.chat_completion.ChatCompletion"

#: records a semcache writer never produces (another process, an older version or a
#: hostile writer with access to the backend may have): each must be a counted miss
MALFORMED_RECORDS = {
    "kind is a list": {"kind": ["x"]},
    "kind is an object": {"kind": {"a": 1}},
    "kind is a number": {"kind": 5},
    "prompt is an object": {"prompt": {"a": 1}},
    "context is a list": {"context": ["c"]},
    "created_at is a string": {"created_at": "12"},
    "created_at is NaN": {"created_at": "nan"},
    "created_at is a bool": {"created_at": True},
    "expires_at is NaN": {"expires_at": "NaN"},
    "expires_at is Infinity": {"expires_at": "inf"},
    "expires_at is a list": {"expires_at": [1]},
}

#: well-formed records whose value is not a chat completion: never served, never raising
NOT_A_COMPLETION = {
    "choices of numbers": {**CHAT_VALUE, "choices": [1]},
    "message is a string": {**CHAT_VALUE, "choices": [{"index": 0, "message": "x",
                                                       "finish_reason": "stop"}]},
    "content is a number": {**CHAT_VALUE, "choices": [{"index": 0, "finish_reason": "stop",
                                                       "message": {"role": "assistant",
                                                                   "content": 5}}]},
    "value is a list": [1, 2],
}


def _raw_record(key: str, value=CHAT_VALUE, **over) -> bytes:
    rec = {"v": 1, "key": key, "value": value, "created_at": time.time(), "expires_at": None,
           "call_type": "completion", "prompt": None, "context": None, "kind": CHAT_KIND}
    rec.update(over)
    return json.dumps(rec).encode()


def _answered_fresh(req: dict, stream: bool, case: str) -> None:
    """``completion(**req)`` went upstream (its mock answers "fresh"): the stored record
    was neither served nor allowed to break the call, streamed or not."""
    import semcache

    r = semcache.completion(**req, stream=stream)
    if stream:
        text = "".join(ch.choices[0].delta.content or "" for ch in r if ch.choices)
        assert text == "fresh", case
    else:
        assert r.choices[0].message.content == "fresh", case
        assert r._hidden_params["cache_hit"] is False, case


def test_malformed_stored_records_are_counted_misses_on_every_backend(backend, monkeypatch):
    """A record of the wrong shape read back from any backend is an integrity miss: never
    served, never a raw TypeError out of a lookup or a completion, stream or not."""
    import semcache

    cache = Cache(**backend, namespace="bad" + uuid.uuid4().hex[:6])
    monkeypatch.setattr(semcache, "cache", cache)
    try:
        for i, (case, over) in enumerate(MALFORMED_RECORDS.items()):
            # mock_response is keyed: the record sits under the mocked request's key
            req = {**ask(f"malformed record {i}"), "mock_response": "fresh"}
            key = cache.add_cache(CHAT_VALUE, **req)
            before = cache.stats()["integrity_rejections"]
            cache.store.set(key, _raw_record(key, **over))
            assert cache.get_cache(**req) is None, case
            assert cache.stats()["integrity_rejections"] > before, case
            for stream in (False, True):
                cache.store.set(key, _raw_record(key, **over))
                _answered_fresh(req, stream, case)
        for i, (case, value) in enumerate(NOT_A_COMPLETION.items()):
            req = {**ask(f"not a completion {i}"), "mock_response": "fresh"}
            key = cache.add_cache(CHAT_VALUE, **req)
            for stream in (False, True):
                cache.store.set(key, _raw_record(key, value))
                _answered_fresh(req, stream, case)
    finally:
        cache.flush()
        cache.close()
