# The two commands of the README, with every set-up step they need on a fresh machine:
#   make sandbox   start the instance on the embedded default config (synth summary, then sandbox)
#   make test      run the whole test suite (unit, moto, gateway, browser)
SHELL := /bin/bash
VENV := .venv
RESEARCHER_VENV := .venv-researcher
BIN := $(VENV)/bin
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export PATH := $(CURDIR)/$(BIN):$(CURDIR)/node_modules/.bin:$(PATH)

.PHONY: sandbox test test-quick synth setup browser
sandbox: setup
	$(BIN)/heliocloud validate
	$(BIN)/heliocloud synth
	$(BIN)/heliocloud sandbox

test: setup browser
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-quick: setup  ## the fast loop: no servers, no browser
	$(BIN)/python -m pytest -m unit $(PYTEST_ARGS)

synth: setup
	$(BIN)/heliocloud synth

setup: $(VENV)/.installed node_modules/.installed $(RESEARCHER_VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

# The HelioCloud researcher environment (helm/images/requirements.txt, the images' spec) that the
# sandbox's notebooks and Dask workers run in, resolved for this machine's Python.
$(RESEARCHER_VENV)/.installed: helm/images/requirements.txt heliocloud/sandbox/researcher-constraints-py311.txt
	python3 -m venv $(RESEARCHER_VENV)
	$(RESEARCHER_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(RESEARCHER_VENV)/bin/python -m pip install --quiet -r helm/images/requirements.txt \
	  -c heliocloud/sandbox/researcher-constraints-py311.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Debian's Chromium for the Playwright browser tests (Playwright's own browser download cannot
# work offline, so the tests launch /usr/bin/chromium).
browser:
	@command -v chromium >/dev/null || { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium chromium-driver >/dev/null; }
