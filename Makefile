# The commands a person types. `make train` and `make test` install what is missing first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
ARGS ?=
PYTEST_ARGS ?=

.PHONY: install train smoke sweep test test-fast lint format clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip >/dev/null
	$(PY) -m pip install -e '.[dev,cluster]'
	touch $(STAMP)

## Train the default quick config (MNIST DCGAN) on whatever accelerator is present.
train: install
	$(PY) -m gan_lab.train $(ARGS)

## A few steps and one validation: checks the whole path in well under a minute.
smoke: install
	$(PY) -m gan_lab.train experiment=smoke $(ARGS)

## A Hydra multirun, e.g. make sweep ARGS="model.latent_dim=25,50,100 seed=0,1,2"
sweep: install
	$(PY) -m gan_lab.train -m $(ARGS)

## The whole test suite (CPU).
test: install
	$(PY) -m pytest $(PYTEST_ARGS)

## Only the fast tests.
test-fast: install
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: install
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

clean:
	rm -rf outputs multirun .pytest_cache .ruff_cache
