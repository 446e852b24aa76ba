# `make demo` and `make test` work on a fresh machine with Python >= 3.10 and make.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test generate lint typecheck pytest docs docs-check check-wheel peers interop fuzz fuzz-smoke bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[tests,trio,anyio,docs]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/smtpcore demo

# The keyword types written from the option classes; `lint` fails when one is stale.
generate: $(STAMP)
	$(BIN)/python tools/generate.py

lint: $(STAMP)
	$(BIN)/python tools/generate.py --check
	$(BIN)/ruff check src tests tools fuzz $(wildcard benchmarks)
	$(BIN)/ruff format --check src tests tools fuzz $(wildcard benchmarks)

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest -q

docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

# The built site in headless Chromium (Debian's, installed when missing): every
# page, link and anchor, no console error; screenshots in site/screenshots/.
docs-check: $(STAMP)
	$(BIN)/python tools/docs_check.py

# The wheel and sdist as a user gets them: metadata, then a no-extras install
# into a fresh venv outside the tree (and under Python 3.10 when there is one).
check-wheel: $(STAMP)
	$(BIN)/python tools/check_wheel.py

test: lint typecheck docs pytest

# Real peers (Postfix, Exim, OpenSMTPD, Dovecot, swaks, msmtp...) on loopback; needs root.
peers:
	bash scripts/peers.sh

# The interop tests alone, and docs/interop.md written from their results.
interop: $(STAMP)
	$(BIN)/python tools/interop_matrix.py

fuzz: $(STAMP)
	$(BIN)/python -m pip install --quiet atheris
	$(BIN)/python -m fuzz.run

fuzz-smoke: $(STAMP)
	$(BIN)/python -m pip install --quiet atheris
	$(BIN)/python -m fuzz.run --smoke

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) site .mypy_cache .pytest_cache .ruff_cache
