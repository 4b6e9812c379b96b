# The commands a person types. `make train` and `make test` install what is missing first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
ARGS ?=
PYTEST_ARGS ?=

.PHONY: install train smoke sweep test test-fast gpu-check lint format clean

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

## On a CUDA machine, what a CPU cannot show, under outputs/gpu_check/: the GPU tests, the
## bench (precision x channels_last x compile for the 64x64 DCGAN, the largest batch, and the
## peer: PEER= is your copy of pytorch/examples' dcgan/main.py), and the FID after a short run
## in each precision over 3 seeds. Every step runs; the exit status says whether all passed.
PEER ?=
GPU_CHECK ?= outputs/gpu_check
gpu-check: install
	@$(PY) -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else \
	  'make gpu-check needs a CUDA GPU, and torch sees none')"
	@test -n "$(PEER)" || { echo "make gpu-check needs PEER=<path to dcgan/main.py>" \
	  "(git clone https://github.com/pytorch/examples)" >&2; exit 2; }
	status=0; \
	$(PY) -m pytest -m gpu -v || status=1; \
	$(PY) -m gan_lab.bench "sections=[train,precision,memory,peer]" "precision_models=[dcgan64]" \
	  "compile=[false,max-autotune-no-cudagraphs,reduce-overhead]" steps=200 warmup=20 \
	  "peer_epochs=[2,50]" peer_script=$(PEER) out=$(GPU_CHECK)/bench.json || status=1; \
	$(PY) -m gan_lab.train -m trainer=gpu trainer.precision=bf16-mixed,16-mixed,32-true \
	  seed=0,1,2 trainer.max_epochs=2 hydra.sweep.dir=$(GPU_CHECK)/precision || status=1; \
	$(PY) -m gan_lab.report $(GPU_CHECK)/precision || status=1; \
	exit $$status

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: install
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

clean:
	rm -rf outputs multirun .pytest_cache .ruff_cache
