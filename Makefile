# The one interface to the curriculum. Every target works from a fresh clone with Python 3.11+ and make:
# the virtual environment and the pinned dependencies are installed on first use.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
READY := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml 2>/dev/null | cksum | cut -d' ' -f1)
STAGES := $(sort $(patsubst %/producer/__init__.py,%,$(wildcard stage*_*/producer/__init__.py)))
STAGE_NUMBERS := $(foreach s,$(STAGES),$(patsubst stage%,%,$(firstword $(subst _, ,$(s)))))

.DEFAULT_GOAL := help
# The stages with a dead-letter tool (stage 4 on): make dlq names them when STAGE= is another.
DLQ_STAGES := $(patsubst %/consumer/dlq.py,%,$(wildcard stage*_*/consumer/dlq.py))
# The stages that write spans to a file (stage 5 on): make trace reads the span file of one of them.
TRACE_STAGES := $(patsubst %/shared/spans.py,%,$(wildcard stage*_*/shared/spans.py))
# stage<N> is a pattern rule, and make never applies one to a .PHONY target, so those are not listed here.
.PHONY: help test grade start diff diffs doctor clean lock bench bench-instructions tour propagate

help: ## list the targets
	@echo "Task Dispatch Producer - a staged curriculum. Targets:"
	@grep -hE '^([a-z0-9%-]+|stage%):.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/; s/^stage%/stage<N>/' | awk -F'\t' '{printf "  make %-26s %s\n", $$1, $$2}'
	@echo "  stages here: $(STAGE_NUMBERS)   (PORT=8000 by default; DATABASE_URL / REDIS_URL / KAFKA_BOOTSTRAP_SERVERS pick real backends)"

$(READY): requirements.lock pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || \
	  { echo "error: Python 3.11+ is needed ($(PYTHON) is $$($(PYTHON) -V 2>&1)); set PYTHON=python3.11"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "installing the pinned dependencies into $(VENV) ..."
	@$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.lock
	@rm -f $(VENV)/.installed-* && touch $@

# A pattern, so that any stage<N> reaches the runner, which answers a stage this repository does not have.
stage%: $(READY) ## bring stage N's checkpoint up on http://127.0.0.1:8000 or PORT (Ctrl-C stops it)
	@$(PY) -m common.runner $*

# Four workers on the 2-core reference machine: a test spends part of its time waiting for the
# services it drives, so more workers than cores fill the cores. Each test file stays on one worker,
# and a worker keeps to the stages it already runs (common/testing/scheduling.py), so the services a
# file starts stay shared (measured on the embedded defaults: 115-125 s with three, 109-112 s with four).
# TEST_WORKERS=0 runs everything in this process.
TEST_WORKERS ?= 4
test: $(READY) ## run every test: the shared unit tests and every stage's acceptance suite (TEST_WORKERS=4)
	@$(PY) -m pytest $(if $(filter-out 0,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadfile)

grade: $(READY) ## scorecard: STAGE=<n> (default: all), IMPL=<stage package dir> or TARGET=<http://host:port>
	@$(PY) -m common.testing.grade $(if $(STAGE),--stage $(STAGE)) $(if $(IMPL),--impl $(IMPL)) $(if $(TARGET),--target $(TARGET))

start: $(READY) ## STAGE=<n>: copy stage n-1's end state into workspace/ to start your own attempt
	@$(PY) -m common.tools.start $(STAGE)

diff: $(READY) ## FROM=<n> TO=<m>: show what stage m changed against stage n
	@$(PY) -m common.tools.diffs --from $(FROM) --to $(TO)

diffs: $(READY) ## regenerate every stage's CHANGES.diff
	@$(PY) -m common.tools.diffs --write

doctor: $(READY) ## check Python, the dependencies and each backend (reachable, or embedded)
	@$(PY) -m common.doctor

bench: $(READY) ## STAGE=<n>: run the stage's benchmark script (needs wrk)
	@$(PY) -m common.bench $(STAGE)

bench-instructions: $(READY) ## STAGE=<n>: one request's CPU instructions in stage n and n-1, counted by callgrind (needs valgrind)
	@$(PY) -m common.bench_instructions $(STAGE)

tour: $(READY) ## STAGE=<n>: run the stage's walk-through for real and print it (WRITE=1 rewrites its design/walkthrough.md)
	@$(PY) -m common.tour $(STAGE) $(if $(WRITE),--write)

.PHONY: broker
broker: $(READY) ## ARGS="status|down|up|rtt MS|offsets --group G": drill the embedded broker of a running stage (4 on)
	@$(PY) -m common.broker $(ARGS)

.PHONY: dlq
dlq: $(READY) ## STAGE=<n> ARGS="list|show N|replay N|discard N": inspect, replay or discard the stage's dead letters
	@$(PY) -m $(or $(filter stage$(STAGE)_%,$(DLQ_STAGES)),$(error $(if $(STAGE),stage $(STAGE) has no dead-letter tool,give STAGE=<n>); stages with one here: $(foreach s,$(DLQ_STAGES),$(patsubst stage%,%,$(firstword $(subst _, ,$(s))))))).consumer.dlq $(ARGS)

.PHONY: trace
trace: $(READY) ## STAGE=<n> ID=<trace id or X-Request-ID>: print one trace from the span file as a tree (5 on)
	@$(PY) -m $(or $(filter stage$(STAGE)_%,$(TRACE_STAGES)),$(error $(if $(STAGE),stage $(STAGE) writes no span file,give STAGE=<n>); stages with one here: $(foreach s,$(TRACE_STAGES),$(patsubst stage%,%,$(firstword $(subst _, ,$(s))))))).shared.spans $(ID)

.PHONY: panels drill
panels: $(READY) ## STAGE=<n> [PROMETHEUS=<url>] [MINUTES=15]: draw the stage's dashboard from Prometheus as PNGs (5 on)
	@$(PY) -m common.panels $(STAGE) $(if $(PROMETHEUS),--prometheus $(PROMETHEUS)) $(if $(MINUTES),--minutes $(MINUTES))

drill: $(READY) ## STAGE=<n> SCENARIO=db-slow|broker-down|broker-slow|penetration: a fault under load, drawn (5 on)
	@$(PY) -m common.drill $(STAGE) $(SCENARIO)

lock: ## re-resolve the pinned dependency set into requirements.lock
	@rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	@$(PYTHON) -c 'import tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]; \
	  print("\n".join(p["dependencies"] + p["optional-dependencies"]["test"]))' > .lock-venv/direct.txt
	@.lock-venv/bin/pip install --quiet --disable-pip-version-check -r .lock-venv/direct.txt
	@{ echo '# Generated by `make lock` from pyproject.toml (direct pins + extras "test"). Do not edit by hand.'; \
	   .lock-venv/bin/pip freeze; } > requirements.lock
	@rm -rf .lock-venv && echo "requirements.lock updated"

clean: ## remove the virtual environment, var/, reports/ and caches (not workspace/)
	rm -rf $(VENV) var reports .pytest_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

propagate: $(READY) ## carry an uncommitted fix in stage N into every later stage that held the same code
	@$(PY) -m common.tools.propagate
