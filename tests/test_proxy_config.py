"""The proxy's config loader: LiteLLM's file shape, env secrets, errors naming file+key."""

from __future__ import annotations

import logging
import sys
import textwrap

import pytest

from semcache import Cache, ConfigError
from semcache.embedders.batching import BatchingEmbedder
from semcache.proxy.config import ProxyConfigError, build_cache, load_config

LITELLM_FILE = """\
model_list:
  - model_name: gpt-4o-mini
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: http://127.0.0.1:9/v1
      api_key: os.environ/PROXY_TEST_OPENAI_KEY
      rpm: 100
  - model_name: gpt-4o-mini-eu
    litellm_params:
      model: gpt-4o-mini
      api_base: http://127.0.0.1:10/v1/
    model_info: {id: eu}
litellm_settings:
  drop_params: true
  success_callback: ["langfuse"]
  cache: true
  cache_params:
    type: local
    namespace: prod
    ttl: 600
    supported_call_types: ["acompletion", "completion"]
router_settings:
  routing_strategy: usage-based-routing
  caching_groups: [["gpt-4o-mini", "gpt-4o-mini-eu"]]
general_settings:
  master_key: os.environ/PROXY_TEST_MASTER
  database_url: postgres://nowhere
"""


def write(tmp_path, text: str):
    p = tmp_path / "config.yaml"
    p.write_text(textwrap.dedent(text))
    return p


@pytest.fixture
def env(monkeypatch):
    monkeypatch.setenv("PROXY_TEST_OPENAI_KEY", "sk-upstream")
    monkeypatch.setenv("PROXY_TEST_MASTER", "sk-master-1234")


def test_litellm_config_loads_unchanged(tmp_path, env, caplog):
    with caplog.at_level(logging.WARNING, logger="semcache.proxy"):
        cfg = load_config(write(tmp_path, LITELLM_FILE))
    dep = cfg.deployments["gpt-4o-mini"][0]
    assert (dep.model, dep.api_base, dep.api_key) == (
        "gpt-4o-mini", "http://127.0.0.1:9/v1", "sk-upstream")  # openai/ prefix stripped
    assert cfg.deployments["gpt-4o-mini-eu"][0].api_base == "http://127.0.0.1:10/v1"
    assert cfg.master_key == "sk-master-1234"
    assert cfg.caching_groups["gpt-4o-mini"] == cfg.caching_groups["gpt-4o-mini-eu"]
    assert cfg.caching_groups["gpt-4o-mini"] == 'group:["gpt-4o-mini","gpt-4o-mini-eu"]'
    assert cfg.namespaces == ["prod"]
    cache = build_cache(cfg)
    assert isinstance(cache, Cache) and cache.namespace == "prod" and cache.ttl == 600
    # every unsupported LiteLLM key, in ONE warning
    warnings = [r for r in caplog.records if "not supported" in r.getMessage()]
    assert len(warnings) == 1
    msg = warnings[0].getMessage()
    for key in ("model_list[0].litellm_params.rpm",
                "litellm_settings.drop_params", "litellm_settings.success_callback",
                "router_settings.routing_strategy", "general_settings.database_url"):
        assert key in msg
    assert "caching_groups" not in msg and "master_key" not in msg


def test_semcache_settings_keys_prices_and_semantic_default(tmp_path, env, minilm):
    cfg = load_config(write(tmp_path, """\
        model_list:
          - {model_name: m, litellm_params: {model: m, api_base: "http://127.0.0.1:9/v1"}}
        litellm_settings:
          cache: true
          cache_params: {type: faiss-semantic, similarity_threshold: 0.8}
        semcache_settings:
          keys:
            - {key: os.environ/PROXY_TEST_OPENAI_KEY, namespace: team-a}
            - {key: sk-b, namespace: team-b}
          prices: {m: {input: 0.15, output: 0.6}}
        """))
    assert [(k.key, k.namespace) for k in cfg.keys] == [("sk-upstream", "team-a"),
                                                         ("sk-b", "team-b")]
    assert cfg.namespaces == ["default", "team-a", "team-b"]
    assert cfg.prices["m"].output == 0.6
    cache = build_cache(cfg)
    # semantic only when asked for (issue #22: cache: true alone is LiteLLM's default)
    assert cache.type == "faiss-semantic"
    assert isinstance(cache.embedder, BatchingEmbedder)
    assert cache.similarity_threshold == 0.8


def test_cache_params_choose_the_verifier_by_name(tmp_path, env):
    cfg = load_config(write(tmp_path, "litellm_settings:\n  cache: true\n  cache_params: "
                            "{type: faiss-semantic, verifier: structural-strict}\n"))
    cache = build_cache(cfg)
    assert cache.verifier is not None and cache.verifier.name == "structural-strict"
    assert cache.similarity_threshold == cache.verifier.floor


def test_caching_groups_stay_apart_whatever_their_names_hold(tmp_path, env):
    # a label joined with "|" made [["a|b", "c"], ["a", "b|c"]] one group: four
    # models' answers shared between two groups that have no model in common
    models = "".join(f"  - {{model_name: '{m}', litellm_params: {{model: x}}}}\n"
                     for m in ("a|b", "c", "a", "b|c"))
    cfg = load_config(write(tmp_path, "model_list:\n" + models + "router_settings:\n"
                            "  caching_groups: [['a|b', 'c'], ['a', 'b|c']]\n"))
    g = cfg.caching_groups
    assert g["a|b"] == g["c"] and g["a"] == g["b|c"] and g["a|b"] != g["a"]


@pytest.mark.parametrize(("text", "key", "reason"), [
    ("model_list: {a: 1}", "model_list", "must be a list"),
    ("model_list: [{litellm_params: {model: x}}]", "model_list[0].model_name",
     "non-empty string"),
    ("model_list: [{model_name: m, litellm_params: {api_key: os.environ/NOPE_NOT_SET_X}}]",
     "model_list[0].litellm_params.api_key", "NOPE_NOT_SET_X is not set"),
    ("model_list: [{model_name: m, litellm_params: {api_base: ftp://x}}]",
     "model_list[0].litellm_params.api_base", "http(s) URL"),
    ("litellm_settings: {cache: yes-please}", "litellm_settings.cache", "true or false"),
    ("litellm_settings: {cache_params: {type: local, similarity_treshold: 0.9}}",
     "litellm_settings.cache_params.similarity_treshold", "unknown parameter"),
    ("litellm_settings: {cache_params: {type: nosuch}}",
     "litellm_settings.cache_params.type", "unknown cache type"),
    ("litellm_settings: {cache_params: {type: faiss-semantic, verifier: structural-loose}}",
     "litellm_settings.cache_params.verifier", "unknown verifier 'structural-loose'"),
    ("litellm_settings: {cache_params: {type: local, ttl: -5}}",
     "litellm_settings.cache_params.ttl", "positive"),
    ("router_settings: {caching_groups: [[a, b]]}", "router_settings.caching_groups[0]",
     "not a model_name"),
    ("semcache_settings: {keys: [{key: k1, namespace: 'a:b'}]}",
     "semcache_settings.keys[0].namespace", "namespace"),
    ("semcache_settings: {keys: [{key: k1, namespace: a}, {key: k1, namespace: b}]}",
     "semcache_settings.keys[1].key", "duplicate"),
    ("semcache_settings: {prices: {m: {input: -1}}}", "semcache_settings.prices.m.input",
     ">= 0"),
    ("semcache_settings: {cache_everything: true}", "semcache_settings.cache_everything",
     "unknown setting"),
    ("model_list: [unclosed", "<file>", "not valid YAML"),
])
def test_bad_config_names_file_and_key(tmp_path, text, key, reason):
    path = write(tmp_path, text)
    with pytest.raises(ProxyConfigError) as info:
        cfg = load_config(path)
        build_cache(cfg)  # cache_params are checked by Cache itself
    err = info.value
    assert isinstance(err, ConfigError)
    assert err.file == str(path) and err.key == key
    assert str(err).startswith(f"{path}: {key}: ")
    assert reason in str(err)


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ProxyConfigError, match="cannot read"):
        load_config(tmp_path / "absent.yaml")


@pytest.mark.parametrize("name", ["config.example.yaml", "config.redis.yaml",
                                  "config.qdrant.yaml"])
def test_shipped_deploy_configs_parse(name):
    import yaml

    from semcache.proxy.config import parse_config

    path = f"deploy/{name}"
    with open(path) as f:
        raw = yaml.safe_load(f)
    env = {k: f"value-of-{k}" for k in ("OPENAI_API_KEY", "EU_API_KEY", "SEMCACHE_MASTER_KEY",
                            "TEAM_SEARCH_KEY", "TEAM_SUPPORT_KEY", "REDIS_HOST",
                            "REDIS_PASSWORD", "QDRANT_URL", "QDRANT_API_KEY")}
    cfg = parse_config(raw, file=path, environ=env)
    assert cfg.master_key == "value-of-SEMCACHE_MASTER_KEY" and cfg.unsupported == []
    assert cfg.cache_params["type"] in ("faiss-semantic", "redis-semantic", "qdrant-semantic")


@pytest.mark.parametrize(("setting", "value"), [
    ("semcache_settings.max_connections", ".inf"),
    ("semcache_settings.max_connections", ".nan"),
    ("semcache_settings.max_connections", "0.5"),
    ("semcache_settings.max_connections", "'inf'"),
    ("semcache_settings.max_body_bytes", ".inf"),
    ("semcache_settings.max_body_bytes", "'nan'"),
    ("semcache_settings.max_prompt_chars", "1.5"),
    ("semcache_settings.upstream_timeout", ".nan"),
    ("semcache_settings.upstream_timeout", ".inf"),
    ("litellm_settings.request_timeout", "'NaN'"),
    ("semcache_settings.prices.m.input", ".nan"),
    ("semcache_settings.prices.m.output", ".inf"),
])
def test_non_finite_or_fractional_numbers_are_refused(tmp_path, setting, value):
    # .inf crashed the loader with a raw OverflowError (int(inf)); NaN passed every
    # range check (NaN <= 0 is False) and reached httpx timeouts and cost figures;
    # max_connections 0.5 became int 0: a pool of no connections, every miss waiting
    section, *rest = setting.split(".")
    inner = f"{{{rest[-1]}: {value}}}"
    for k in reversed(rest[:-1]):
        inner = f"{{{k}: {inner}}}"
    path = write(tmp_path, f"{section}: {inner}\n")
    with pytest.raises(ProxyConfigError) as info:
        load_config(path)
    assert info.value.key == setting


@pytest.mark.parametrize("text", [
    "master_key: sk-top-level\n",
    "litellm_settings: {master_key: sk-misplaced}\n",
    "router_settings: {master_key: sk-misplaced}\n",
    "semcache_settings: {master_key: sk-misplaced}\n",
])
def test_a_misplaced_master_key_is_an_error_not_an_open_proxy(tmp_path, text):
    # outside general_settings it was one more "unsupported, ignored" name in a
    # warning, and a proxy with no master key and no client keys is open: every
    # caller the master (flush, every cache control)
    with pytest.raises(ProxyConfigError, match="general_settings.master_key"):
        load_config(write(tmp_path, text))


@pytest.mark.parametrize(("content", "reason"), [
    ("model_list: []\n# café\n".encode("latin-1"), "not UTF-8 text"),
    (f"x: {'1' * (sys.get_int_max_str_digits() + 1)}\n".encode(), "not valid YAML: a value"),
    (b"x: 2024-13-45\n", "not valid YAML: a value"),
    (f"x: {'[' * 100_000}{']' * 100_000}\n".encode(), "not valid YAML: nested too deeply"),
    (("x: " + "{a: " * 100_000 + "1" + "}" * 100_000 + "\n").encode(),
     "not valid YAML: nested too deeply"),
])
def test_a_file_yaml_cannot_read_is_a_config_error(tmp_path, capsys, content, reason):
    # were a UnicodeDecodeError, ValueError (int digits limit, a bad date) and
    # RecursionError out of read_text and yaml.safe_load: tracebacks from `semcache serve`
    path = tmp_path / "config.yaml"
    path.write_bytes(content)
    with pytest.raises(ProxyConfigError) as info:
        load_config(path)
    assert (info.value.file, info.value.key) == (str(path), "<file>")
    assert reason in str(info.value)
    from semcache.cli import main

    assert main(["serve", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{path}: <file>: {reason}" in err
