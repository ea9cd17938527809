# The two commands of the README: `make demo` and `make test`. Both set up first.
PY := .venv/bin/python

.PHONY: setup demo test bench lint
setup:
	@bash scripts/setup.sh

demo: setup
	$(PY) -m semcache demo

test: setup
	$(PY) -m pytest -q

bench: setup
	$(PY) benchmarks/run.py

lint: setup
	$(PY) -m ruff check semcache tests
	$(PY) -m mypy
