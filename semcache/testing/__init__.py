"""Test support: fake upstreams (``fake_openai``), real servers (``servers``) and the
pytest plugin that starts them (stdlib only at import time)."""
