"""``semcache serve`` / ``python -m semcache.proxy`` as a user runs them: a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import httpx
import pytest

from semcache.cli import main
from semcache_testing.fake_openai import FakeOpenAI
from semcache_testing.proxy_server import free_port
from tests.proxy_helpers import openai_client


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[1]
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"the proxy at {url} did not become healthy in {timeout} s")


@pytest.mark.parametrize("workers", [1, 2])
def test_module_entry_point_serves_with_workers(tmp_path, workers):
    with FakeOpenAI() as fake:
        cfg = tmp_path / "config.yaml"
        cfg.write_text(textwrap.dedent(f"""\
            model_list:
              - model_name: chat
                litellm_params: {{model: openai/gpt-4o-mini, api_base: "{fake.base_url}",
                                  api_key: os.environ/PROXY_CLI_UPSTREAM_KEY}}
            litellm_settings:
              cache: true
              cache_params: {{type: disk, disk_cache_dir: "{tmp_path / 'cache'}"}}
              set_verbose: true
            general_settings: {{master_key: sk-cli}}
            """))
        port = free_port()
        env = {**os.environ, "PROXY_CLI_UPSTREAM_KEY": "sk-up", "PYTHONPATH": os.getcwd()}
        proc = subprocess.Popen(
            [sys.executable, "-m", "semcache.proxy", "--config", str(cfg), "--port", str(port),
             "--workers", str(workers)], env=env, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_healthy(url, proc)
            c = openai_client(url + "/v1", "sk-cli")
            stages = []
            for _ in range(3):  # on disk: every worker sees the others' entries
                r = c.chat.completions.with_raw_response.create(
                    model="chat", messages=[{"role": "user", "content": "hi"}])
                stages.append(r.headers["x-semcache-stage"])
            assert stages == ["miss", "exact", "exact"]
            assert fake.calls["chat/completions"] == 1
            assert fake.requests[0]["headers"].get("authorization") == "Bearer sk-up"
        finally:
            proc.terminate()
            _, err = proc.communicate(timeout=30)
        # the unsupported LiteLLM key is reported once, whatever the number of workers
        assert err.count("litellm_settings.set_verbose") == 1


def test_serve_refuses_a_bad_config_naming_file_and_key(tmp_path, capsys):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("general_settings: {master_key: os.environ/PROXY_CLI_UNSET_VAR}\n")
    assert main(["serve", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert f"{cfg}: general_settings.master_key: environment variable PROXY_CLI_UNSET_VAR" in err


@pytest.mark.parametrize(("flag", "value"), [
    ("--embedding-threads", "0"), ("--embedding-threads", "-2"),
    ("--workers", "0"), ("--workers", "-1"),
    ("--port", "-1"), ("--port", "70000"),
])
def test_serve_refuses_an_out_of_range_flag_naming_it(tmp_path, capsys, monkeypatch, flag,
                                                      value):
    # these were taken as given: --embedding-threads 0 wrote OMP_NUM_THREADS=0 into the
    # environment (torch refuses it; a worker then died at its first embedding), a
    # --workers below 1 silently served with one, a port out of range failed in uvicorn
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "SEMCACHE_ONNX_THREADS"):
        monkeypatch.setenv(name, "1")
    cfg = tmp_path / "bad.yaml"  # never reached once the flag is refused
    cfg.write_text("general_settings: {master_key: os.environ/PROXY_CLI_UNSET_VAR}\n")
    with pytest.raises(SystemExit) as info:
        main(["serve", "--config", str(cfg), flag, value])
    assert info.value.code == 2
    assert flag in capsys.readouterr().err
    assert os.environ["OMP_NUM_THREADS"] == "1"
