# Set-up and the two promised commands. Everything lands in .venv; nothing outside the project.
#   make report   build the environment, then run the whole paper DAG on the embedded default
#   make test     build the environment, then run the test suite
#   make reference  after `make report`: rewrite reference/default.json, the default's reference record
#   make lock     re-resolve locks/*.txt (exact versions and sha256 hashes) and envs/*.yaml
#   make container-test   build the CPU image with Podman and run a rule's command in it
PYTHON ?= python3
VENV   := .venv
BIN    := $(abspath $(VENV))/bin
STAMP  := $(VENV)/.installed
export PATH := $(BIN):$(PATH)
# The environment: locks/gpu.txt (CUDA torch, vLLM) where an NVIDIA driver is installed, else
# locks/cpu.txt (torch's CPU build). Either is installed in pip's hash-checking mode.
KIND   ?= $(if $(shell command -v nvidia-smi 2>/dev/null),gpu,cpu)
# Where torch's CPU build comes from; asked for torch alone, so a wheel found elsewhere (pip's
# find-links) costs one failed lookup where this index is unreachable.
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu

.PHONY: venv report test reference lint lock dry-run container-test clean

venv: $(STAMP)

$(STAMP): pyproject.toml locks/$(KIND).txt locks/no-deps.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r locks/no-deps.txt
ifeq ($(KIND),cpu)
	$(BIN)/pip install --quiet --require-hashes --no-deps --extra-index-url $(TORCH_CPU_INDEX) \
	  -r locks/cpu-torch.txt
endif
	$(BIN)/pip install --quiet --require-hashes -r locks/$(KIND).txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

report: venv
	$(BIN)/snakemake report

test: venv
	$(BIN)/python -m pytest

# The embedded default's reference record (reference/default.json), from a finished `make report`
# in this clone: rewrite it when a commit changes a result on purpose, and commit it with the change.
reference: report
	$(BIN)/prunebench reference --run . --out reference/default.json

lint: venv
	$(BIN)/snakemake --lint

# The locks are resolved for Linux x86_64 and Python 3.11 (the images' platform) against PyPI, and
# prefer the versions already locked (LOCK_OPTIONS=--upgrade moves them). TORCH_CPU_LINKS is where
# the CPU torch wheel is listed: a find-links page or a local wheel directory.
LOCK_VENV := .venv-lock
TORCH_CPU_LINKS ?= https://download.pytorch.org/whl/torch/
PYPI_INDEX ?= https://pypi.org/simple
COMPILE = $(LOCK_VENV)/bin/uv pip compile --quiet --generate-hashes --index-url $(PYPI_INDEX) \
  --python-version 3.11 --python-platform x86_64-manylinux_2_28 --custom-compile-command "make lock" $(LOCK_OPTIONS)

$(LOCK_VENV)/bin/uv:
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/pip install --quiet uv==0.13.9

lock: $(LOCK_VENV)/bin/uv
	$(COMPILE) pyproject.toml locks/cpu.in locks/models.in --extra test --extra slurm \
	  --find-links $(TORCH_CPU_LINKS) -o locks/cpu.txt
	$(COMPILE) pyproject.toml locks/gpu.in locks/models.in --extra test --extra vllm -o locks/gpu.txt
	$(COMPILE) locks/no-deps.in --no-deps -o locks/no-deps.txt
	$(LOCK_VENV)/bin/python locks/derive.py

container-test: venv
	bash containers/test.sh

dry-run: venv
	$(BIN)/snakemake -n report --configfile config/paper.yaml

clean:
	rm -rf results .snakemake
