# kslim — Kubernetes-native compression for PaddlePaddle detection models.
# `make help` lists the targets.

SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
TESTBIN = $(shell hack/testbin.sh --print 2>/dev/null)

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "\nUsage:\n  make \033[36m<target>\033[0m\n"} \
	  /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2 } \
	  /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Quick start

.PHONY: quickstart-weights
quickstart-weights: venv ## Retrain the quick start's starting weights (kslim://pretrained/..., ~40 min on 2 cores).
	$(VENV)/bin/kslim run examples/quickstart-pretrain.yaml --output .kslim/quickstart-pretrain
	$(PY) hack/install_pretrained.py .kslim/quickstart-pretrain/stages/baseline/model.pdparams \
		shapes-yolov3-mobilenet-v1-x0.25

.PHONY: demo
demo: venv ## Run the quick-start CompressionJob locally (no cluster) and print the result table.
	$(VENV)/bin/kslim run examples/quickstart.yaml --output .kslim/demo

.PHONY: test
test: venv testbin s3server engines tools lint ## Install what is missing, then run every test (lint, unit, control plane, S3, engines, e2e).
	PATH="$(TESTBIN):$$PATH" $(PY) -m pytest $(PYTEST_ARGS)

##@ Local dev cluster (control plane + operator + local kubelet, all local processes)

.PHONY: dev-cluster
dev-cluster: venv testbin s3server ## Start the dev cluster in the background (.kslim/dev); prints how to use it.
	@hack/dev-cluster.sh up

.PHONY: dev-cluster-down
dev-cluster-down: ## Stop exactly what `make dev-cluster` started.
	@hack/dev-cluster.sh down

.PHONY: dev-cluster-status
dev-cluster-status: ## Show what of the dev cluster is running.
	@hack/dev-cluster.sh status

##@ Development

.PHONY: venv
venv: ## Create/refresh .venv (operator + runner + CPU Paddle + dev tools).
	@hack/venv.sh

.PHONY: testbin
testbin: ## Build etcd, kube-apiserver, kube-controller-manager, kubectl and helm into the cache (once).
	@hack/testbin.sh >/dev/null

.PHONY: s3server
s3server: ## Build the S3 test server (MinIO, from its Go module) into the same cache (once; ~11 min cold).
	@hack/s3server.sh >/dev/null

.PHONY: engines
engines: ## Build Kubeflow training-operator and Kueue (from their Go modules) into the same cache (once).
	@hack/engines.sh >/dev/null

.PHONY: tools
tools: ## Install promtool and prometheus (Debian package) for the metrics tests.
	@hack/tools.sh

.PHONY: lint
lint: venv ## ruff (lint + format check) and mypy on the schema, operator and runner.
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy api/kslim_api operator/kslim_operator runner/kslim_runner

.PHONY: fmt
fmt: venv ## Format and auto-fix the code.
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

.PHONY: unit
unit: venv ## Only the tests that need no control plane and no S3 server.
	$(PY) -m pytest -m "not cluster and not s3" $(PYTEST_ARGS)

.PHONY: lock
lock: venv ## Regenerate requirements/constraints.txt (the exact versions CI, the venv and both images install).
	{ echo "# Exact versions CI, the dev venv and both images install (pip -c). Regenerate: make lock"; \
	  $(VENV)/bin/pip freeze --exclude-editable | grep -vi '^kslim'; } > requirements/constraints.txt

.PHONY: crds
crds: venv ## Regenerate crds/ (and the Helm chart's copy) from the schema model.
	$(PY) -m kslim_api.crdgen

.PHONY: chart-readme
chart-readme: venv ## Regenerate helm/kslim/README.md from values.yaml.
	$(PY) hack/chart_readme.py

##@ Benchmarks (long runs live here, not in tests)

.PHONY: bench-baseline
bench-baseline: venv ## Train the YOLOv3-MobileNetV1 baseline for a fixed CPU budget; print AP and speed.
	$(PY) bench/baseline.py

.PHONY: bench-compression
bench-compression: venv ## Every compression technique as a real job against a trained baseline (~1.5 h on 2 cores).
	$(PY) bench/compression.py

.PHONY: bench-gpu
bench-gpu: venv ## TensorRT fp32/fp16/int8 latency of bench-compression's models (GPU build and a GPU needed).
	$(PY) bench/gpu_inference.py

.PHONY: bench-operator
bench-operator: venv testbin ## Operator speed and memory on the test control plane (a burst of CompressionJobs).
	PYTHONPATH=tests:tests/operator $(PY) bench/operator.py

.PHONY: bench-storage
bench-storage: venv s3server ## Dataset download from the local S3 server vs a plain file copy.
	PYTHONPATH=tests $(PY) bench/storage.py
