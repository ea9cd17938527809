"""``semcache serve``: argument parsing and startup, kept apart from ``semcache/cli.py``
so the CLI's table only needs one entry (``add_parser`` + ``run``)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any

__all__ = ["add_arguments", "add_parser", "run"]


def _int_in(low: int, high: int | None = None) -> Any:
    """An argparse ``type``: an int in [low, high], so a bad flag is argparse's usage
    error naming it, not a crash (or a silent fallback) once the proxy starts."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
        if value < low or (high is not None and value > high):
            bound = f">= {low}" if high is None else f"in {low}-{high}"
            raise argparse.ArgumentTypeError(f"must be {bound}, got {value}")
        return value
    return parse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True,
                   help="YAML config (LiteLLM proxy's shape plus semcache_settings)")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    p.add_argument("--port", type=_int_in(0, 65535), default=4000,
                   help="port (default 4000, as LiteLLM)")
    p.add_argument("--workers", type=_int_in(1), default=1,
                   help="uvicorn worker processes (they share a cache on disk or a server: "
                        "faiss-semantic or disk with disk_cache_dir, redis-semantic, "
                        "qdrant-semantic; without a folder the embedded default is per "
                        "process)")
    p.add_argument("--embedding-threads", type=_int_in(1), default=None,
                   help="intra-op threads of a local embedding model, torch or onnxruntime "
                        "(default 1, or $OMP_NUM_THREADS): the event loop needs a core "
                        "too, and batching concurrent requests gains more than threads do")
    p.add_argument("--log-level", default="warning",
                   choices=["critical", "error", "warning", "info", "debug"])


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("serve", help="run the OpenAI-compatible caching proxy",
                              description="Run the OpenAI-compatible caching proxy.")
    add_arguments(p)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    # Before torch / onnxruntime load (here or in a worker). Measured on 2 shared cores
    # under load: one query took 1.1-1.6 s with 2 OpenMP threads in torch (threads spin
    # at barriers while the cores are busy) and 35-50 ms with 1; with onnxruntime, p50
    # 32 ms with 2 intra-op threads and 13 ms with 1.
    threads = getattr(args, "embedding_threads", None)
    names = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "SEMCACHE_ONNX_THREADS")
    if threads is not None:
        for name in names:
            os.environ[name] = str(threads)
    else:
        for name in names:
            os.environ.setdefault(name, os.environ.get("OMP_NUM_THREADS", "1"))
    if "torch" in sys.modules:  # imported already (python -c ...): set it directly
        sys.modules["torch"].set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    from .._errors import ConfigError
    from .config import load_config

    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    try:
        config = load_config(args.config)  # validated (and warned about) once, here
    except ConfigError as exc:
        print(f"semcache serve: {exc}", file=sys.stderr)
        return 2
    import uvicorn

    opts = {"host": args.host, "port": args.port, "log_level": args.log_level,
            "timeout_graceful_shutdown": 5}
    if args.workers > 1:
        kind = config.cache_params.get("type")
        # faiss-semantic with disk_cache_dir is one folder every worker shares (issue #26:
        # one log, read back before a lookup); without a folder it lives in each worker
        in_memory = kind == "local" or (kind == "faiss-semantic" and
                                        not config.cache_params.get("disk_cache_dir"))
        if config.cache_enabled and in_memory:
            logging.getLogger("semcache.proxy").warning(
                "cache type %r lives in each worker's memory: the %d workers will not share "
                "entries (use one worker, give faiss-semantic a disk_cache_dir, or use a "
                "shared type: redis-semantic, qdrant-semantic, redis, disk)", kind,
                args.workers)
        _announce(args, config, None, args.workers)
        os.environ["SEMCACHE_PROXY_CONFIG"] = os.path.abspath(args.config)
        os.environ["SEMCACHE_PROXY_WARNED"] = "1"
        uvicorn.run("semcache.proxy.app:app_from_env", factory=True, workers=args.workers,
                    **opts)
        return 0
    from .app import create_app

    try:
        app = create_app(config)
    except ConfigError as exc:
        print(f"semcache serve: {exc}", file=sys.stderr)
        return 2
    _announce(args, config, app.state.proxy.cache, 1)
    uvicorn.run(app, **opts)
    return 0


def _announce(args: argparse.Namespace, config: Any, cache: Any, workers: int) -> None:
    """The one start-up line (issue #22): printed, not logged, so the default
    ``--log-level warning`` shows it as LiteLLM's proxy shows its own."""
    from .defaults import startup_line

    line = startup_line(host=args.host, port=args.port, cache=cache,
                        cache_type=config.cache_params.get("type")
                        if config.cache_enabled else None,
                        keys=len(config.keys), master=config.master_key is not None,
                        workers=workers)
    print(line, file=sys.stderr, flush=True)
