# Chartbox: `make run` serves the demo on http://127.0.0.1:8000; `make test` runs every test.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000
WORKERS ?= 2

.PHONY: run test test-postgres lint install install-test chromium nginx migrate demo bench clean translations

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

# A per-machine secret, written once; `instance/` is never committed.
instance/config.py:
	mkdir -p instance
	$(BIN)/python -c "import secrets; print('SECRET_KEY = ' + repr(secrets.token_hex(32)))" > $@
	chmod 600 $@

migrate: install instance/config.py
	$(BIN)/flask --app wsgi db upgrade

demo: migrate
	$(BIN)/chartbox demo --if-empty

run: demo
	@echo "Chartbox on http://$(HOST):$(PORT)/ (demo logins: instance/demo-logins.txt)"
	HOST='$(HOST)' PORT='$(PORT)' WORKERS='$(WORKERS)' $(BIN)/gunicorn -c gunicorn.conf.py wsgi:app

# Browser tests use Debian's Chromium; without it (and without root to install it) they skip.
chromium:
	@if [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
		|| echo "Chromium could not be installed: browser tests will be skipped."; \
	else echo "Chromium is not installed (run: sudo apt-get install chromium): browser tests will be skipped."; fi

# tests/test_nginx.py runs Debian's nginx in front of gunicorn; without it (and without root) it skips.
nginx:
	@if [ -x /usr/sbin/nginx ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null) \
		|| echo "nginx could not be installed: the nginx tests will be skipped."; \
	else echo "nginx is not installed (run: sudo apt-get install nginx-light): the nginx tests will be skipped."; fi

# The suite runs on every core (pytest-xdist, TEST_WORKERS of them), except the `alone` tests
# (tests/abuse/, which time a patient's requests while attacking a server): they run after, by
# themselves. Both parts always run; it fails if either fails, or if neither ran a test (pytest's 5).
TEST_WORKERS ?= auto
define run-suite
	@set +e; $(1) $(BIN)/pytest -n $(TEST_WORKERS) -m "not alone" $(PYTEST_ARGS); rest=$$?; \
	$(1) $(BIN)/pytest -m alone $(PYTEST_ARGS); alone=$$?; \
	if [ $$rest = 5 ] && [ $$alone = 5 ]; then exit 5; fi; \
	for rc in $$rest $$alone; do [ $$rc = 0 ] || [ $$rc = 5 ] || exit $$rc; done
endef

test: install-test chromium nginx
	$(call run-suite,)

# The same suite on PostgreSQL (CHARTBOX_TEST_POSTGRES_URL): one migrated schema per run (per
# worker), dropped after.
test-postgres: install-test chromium nginx
	$(call run-suite,CHARTBOX_TEST_DATABASE=postgresql)

$(VENV)/.installed-bench: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test,bench]'
	touch $@ $(VENV)/.installed-test $(VENV)/.installed

# Each script prints a Markdown table (BENCHMARKS.md); abuse.py and the HTTP ones run real
# gunicorn servers (and wrk, nginx: apt-get install wrk nginx-light; pyvips: libvips42).
bench: $(VENV)/.installed-bench
	$(BIN)/python bench/run.py
	$(BIN)/python bench/parsers.py
	$(BIN)/python bench/renditions.py
	$(BIN)/python bench/ratelimits.py
	$(BIN)/python bench/abuse.py
	$(BIN)/python bench/large_files.py
	$(BIN)/python bench/rendition_vs_vips.py
	$(BIN)/python bench/concurrency.py
	$(BIN)/python bench/pagination.py

clean:
	rm -rf $(VENV) .pytest_cache test-output

# Lint: ruff over the code and tests, mypy over app/ (settings in pyproject.toml).
lint: install-test
	$(BIN)/ruff check app tests bench
	$(BIN)/mypy

# The pages' languages (translations/, see README "Languages"): gather every marked string from
# app/ and templates/, merge them into each language's .po (translate the new, empty ones there),
# and compile the .mo files the app reads (committed, so an install needs no step of its own).
BABEL_KEYWORDS := -k _l -k lazy_gettext -k N_
translations: install
	$(BIN)/pybabel extract -F babel.cfg $(BABEL_KEYWORDS) --no-location --sort-output --project Chartbox -o translations/messages.pot .
	$(BIN)/pybabel update -i translations/messages.pot -d translations --no-wrap --no-fuzzy-matching --ignore-obsolete --ignore-pot-creation-date
	rm translations/messages.pot
	$(BIN)/pybabel compile -d translations --statistics
