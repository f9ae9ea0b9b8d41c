# The two commands of the README: `make up` and `make test`.
# Both bootstrap the virtualenv first, so they work on a fresh machine.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The lock decides what is installed (docs/dependencies.md): exact versions with hashes.
LOCK := requirements/dev.txt
UV_VERSION := 0.13.8

.PHONY: up test test-deps lint typecheck pytest bootstrap clean viewer lock upgrade docs

$(STAMP): $(LOCK) pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --require-hashes -r $(LOCK)
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

bootstrap: $(STAMP)

# Re-resolve the lock: `lock` keeps every pin that still fits pyproject.toml's ranges,
# `upgrade` takes the newest releases. Both need uv, installed at a pinned version.
lock upgrade: $(STAMP)
	$(BIN)/python -m pip install -q uv==$(UV_VERSION)
	bash scripts/lock.sh $(if $(filter upgrade,$@),--upgrade)

# The <foto3d-viewer> bundle (libs/viewer/web/dist/): built from the pinned npm packages
# (package-lock.json), rebuilt when its sources change, never committed.
VIEWER_WEB := libs/viewer/web
VIEWER_MANIFEST := $(VIEWER_WEB)/dist/manifest.json

$(VIEWER_WEB)/node_modules/.package-lock.json: $(VIEWER_WEB)/package-lock.json
	cd $(VIEWER_WEB) && npm ci --no-audit --no-fund --silent

$(VIEWER_MANIFEST): $(VIEWER_WEB)/node_modules/.package-lock.json $(VIEWER_WEB)/build.mjs $(wildcard $(VIEWER_WEB)/src/*.js) $(wildcard $(VIEWER_WEB)/src/*.json) $(wildcard $(VIEWER_WEB)/src/shaders/*.glsl)
	cd $(VIEWER_WEB) && node build.mjs

viewer: $(VIEWER_MANIFEST)

# The customer docs and the staff handbook (build/docs/), served by the gateway at /docs/ and
# the dashboard at /handbook/; code samples are checked against the CLI and the OpenAPI document.
docs: $(STAMP)
	$(BIN)/python -m foto3d.app.docsite

up: $(STAMP) viewer
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

test: test-deps viewer lint typecheck pytest

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache $(VIEWER_WEB)/dist
