# The two commands of the README: `make up` and `make test`.
# Both bootstrap the virtualenv first, so they work on a fresh machine.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: up test test-deps lint typecheck pytest bootstrap clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

bootstrap: $(STAMP)

up: $(STAMP)
	$(BIN)/foto3d up $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

# Chromium, the Node splat tool, CPU torch + gsplat: tests need them, and mypy
# checks our torch code against torch's real types.
test-deps: $(STAMP)
	bash scripts/test-deps.sh

# No skips allowed here: test-deps has installed every tool the tests need.
pytest: $(STAMP)
	FOTO3D_NO_SKIPS=1 $(BIN)/pytest $(PYTEST_ARGS)

test: test-deps lint typecheck pytest

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
