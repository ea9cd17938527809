"""Test helpers: fake upstreams and server launchers (stdlib only at import time)."""
