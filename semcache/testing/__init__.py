"""Test support: real servers (``servers``) and the pytest plugin that starts them."""
