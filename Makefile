# The two commands a newcomer needs: `make run` and `make test`.
# Both create .venv and install the pinned environment when it is missing.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed
export PATH := $(BIN):$(PATH)
# The machine's pip config lists local package folders that may be absent;
# pip warns about each one on every lookup, which buries real messages.
PIP_FILTER := grep -v "is ignored: it is neither a file nor a directory" || true

.PHONY: help setup run test test-fast lab bench bench-smoke broker serve loadtest mosquitto clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s $$'\t'

$(STAMP): requirements.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing the pinned environment into $(VENV) (first time: a few minutes)"
	@# uv installs the ~300 pinned packages in well under a minute where pip
	@# takes over ten; pip remains the fallback when uv cannot be installed.
	@if $(BIN)/python -m pip install -q uv 2>&1 | $(PIP_FILTER) && test -x $(BIN)/uv; then \
	  $(BIN)/uv pip install -q --python $(BIN)/python -r requirements.txt; \
	  $(BIN)/uv pip install -q --python $(BIN)/python --no-deps -e .; \
	else \
	  $(BIN)/python -m pip install -q -r requirements.txt 2>&1 | $(PIP_FILTER); \
	  $(BIN)/python -m pip install -q --no-deps -e . 2>&1 | $(PIP_FILTER); \
	fi
	@$(BIN)/python -c "import iot_telemetry, pandas, sklearn, prophet, dvc, papermill"
	@touch $(STAMP)

setup: $(STAMP)  ## create .venv and install the pinned environment

run: setup  ## run the DVC pipeline on the default data (the synthetic twin)
	dvc repro
	@echo
	@echo "reports: $(CURDIR)/reports/index.html (stage pages in reports/, metrics in reports/metrics/)"

test: setup  ## run the whole test suite, notebooks included
	@$(MAKE) --no-print-directory mosquitto
	$(BIN)/python -m pytest tests notebooks --nbval-lax -p no:cacheprovider

test-fast: setup  ## run the tests without the slow ones
	$(BIN)/python -m pytest tests -m "not slow" -p no:cacheprovider

lab: setup  ## open JupyterLab with the project kernel
	$(BIN)/python -m ipykernel install --sys-prefix --name iot-telemetry --display-name "IoT telemetry (.venv)" >/dev/null
	jupyter lab --notebook-dir=$(CURDIR) $$(test "$$(id -u)" = 0 && echo --allow-root)

bench: setup  ## run every benchmark at full size and write reports/benchmarks.md
	$(BIN)/python benchmarks/run.py

bench-smoke: setup  ## run every benchmark in its small smoke mode
	$(BIN)/python benchmarks/run.py --smoke
	$(BIN)/python benchmarks/loadtest.py --smoke

broker: setup  ## start a local Mosquitto broker with the generated config (loopback)
	iot-telemetry stream broker

serve: setup  ## serve models/package on http://127.0.0.1:8080 (GET /ping, POST /invocations)
	iot-telemetry serve

loadtest: setup  ## load-test the local endpoint; writes reports/loadtest.md and a latency plot
	$(BIN)/python benchmarks/loadtest.py

mosquitto:  ## install the Mosquitto broker with apt when missing and running as root
	@if command -v mosquitto >/dev/null || test -x /usr/sbin/mosquitto; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing mosquitto (apt)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto mosquitto-clients >/dev/null; \
	else \
	  echo "mosquitto not found: broker tests will skip; install it with: sudo apt-get install mosquitto"; \
	fi

clean:  ## remove the environment (.venv); `dvc gc` prunes the DVC cache
	rm -rf $(VENV)
