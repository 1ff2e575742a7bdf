# Two commands: `make run` (the dashboard) and `make test` (the whole suite). Both set everything up.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8501

.PHONY: run test install install-dev data chromium lint benchmark clean

# The virtual environment, rebuilt when a requirements file changes (stamp files mark each install).
$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(VENV)/.installed: $(PY) requirements.txt
	$(PY) -m pip install -q -r requirements.txt
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

# MNIST, once: data/mnist.npz (or $$DIGITSUM_DATA_DIR). Offline: MNIST_IDX_DIR=/dir/with/idx/files make ...
data: install
	$(PY) -m scripts.fetch_data

# The browser tests need Debian's chromium. Install it when missing and we are root; otherwise the
# browser tests skip themselves with a visible reason and the rest of the suite still runs.
chromium:
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
		echo "Installing Debian chromium for the browser tests ..."; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
			|| echo "chromium could not be installed: browser tests will be skipped"; \
	else echo "chromium is missing and we are not root: browser tests will be skipped"; fi

# Warms the default checkpoint's logits cache (cache/, gitignored), then serves dashboard/app.py in the same process.
run: install data
	$(PY) -m scripts.serve --host $(HOST) --port $(PORT)

test: install-dev data chromium
	$(PY) -m pytest

lint: install-dev
	$(VENV)/bin/ruff check core dashboard scripts tests

benchmark: install data
	$(PY) -m scripts.benchmark

clean:
	rm -rf $(VENV) .pytest_cache tests/output
