# The two commands of the README: `make demo` and `make test`. Both set up first.
PY := .venv/bin/python

.PHONY: setup demo test bench lint lock upgrade-deps
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

# Add what pyproject.toml gained to requirements/lock.txt, keeping every other pin.
lock: setup
	bash scripts/lock.sh

# Move every dependency to its newest release, reinstall from the new lock and run the
# suite: a deliberate, tested step (commit requirements/lock.txt when it is green).
upgrade-deps: setup
	bash scripts/lock.sh --upgrade
	$(MAKE) test
