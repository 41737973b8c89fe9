# rsseg: `make train` and `make test` set everything up on first use (.venv with the package, editable).
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: setup train test bench lint clean

setup: $(STAMP)

# Re-install whenever pyproject.toml is newer than the last install.
$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

train: $(STAMP)
	$(VENV)/bin/python train.py $(ARGS)

# Two pytest-xdist workers, one core each; a module's tests (and the bad-input corpus) stay on one worker.
test: $(STAMP)
	$(VENV)/bin/python -m pytest -m "not slow" -n 2 --dist loadgroup $(ARGS)

bench: $(STAMP)
	@for script in benchmarks/*.py; do echo "== $$script"; $(VENV)/bin/python $$script || exit 1; done

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks train.py eval.py predict.py

clean:
	rm -rf $(VENV) outputs .pytest_cache
