# The two commands of the README: `make serve` runs Descent, `make test` runs every check.
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: serve test test-bare lint bench

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $@

serve: $(VENV)/.installed
	$(VENV)/bin/descent serve

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .

# pytest exits 5 when it collected nothing: that must fail, not pass silently.
test: $(VENV)/.installed lint
	scripts/services-up
	$(PY) -m pytest; status=$$?; \
	  if [ $$status -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; exit $$status

# A few PostgreSQL and Redis tests as on a machine with neither: their programs off PATH, the
# addresses closed, so the tests start throwaway servers (tests/bare.py, tests/throwaway.py).
test-bare: $(VENV)/.installed
	$(PY) -m tests.bare

bench: $(VENV)/.installed
	$(VENV)/bin/pip install -q -e '.[bench]'
	$(PY) bench/train_speed.py
