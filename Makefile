# tend's build. `make help` lists the targets.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

GO        ?= go
BIN       := $(CURDIR)/bin
TEND      := $(BIN)/tend
CONTROLLER_GEN := $(BIN)/controller-gen
HELM      := $(BIN)/helm
# Tests find the control-plane binaries here (envtest and the kwok cluster).
export TEND_BIN_DIR := $(BIN)
export KUBEBUILDER_ASSETS := $(BIN)

GO_SOURCES := $(shell find . -name '*.go' -not -path './hack/*' -not -path './.tend/*' 2>/dev/null) go.mod go.sum

.PHONY: help
help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-10s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: tools
tools: ## Build the pinned tools into bin/ (etcd, kube-*, kubelet, kube-proxy, kwok, controller-gen, helm), reusing a per-user cache
	@hack/tools.sh

$(CONTROLLER_GEN) $(HELM) $(BIN)/kube-apiserver $(BIN)/etcd $(BIN)/kwokctl:
	@hack/tools.sh

# crictl is the reference of the shim benchmarks only.
$(BIN)/crictl:
	@hack/tools.sh crictl

.PHONY: build
build: $(TEND) ## Build bin/tend

$(TEND): $(GO_SOURCES)
	@mkdir -p $(BIN)
	$(GO) build -buildvcs=auto -o $(TEND) ./cmd/tend

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Generate deepcopy code, CRDs (api/crds) and the controller's RBAC from its markers (controllers/rbac); copy CRDs and the default policy into charts/tend, write its roles and admission policies, and its golden renderings
	$(CONTROLLER_GEN) object:headerFile=hack/boilerplate.go.txt paths=./api/...
	$(CONTROLLER_GEN) crd:crdVersions=v1 paths=./api/... output:crd:artifacts:config=api/crds
	$(CONTROLLER_GEN) rbac:roleName=tend:controller paths=./controllers/... output:rbac:artifacts:config=controllers/rbac
	@mkdir -p charts/tend/crds
	@rm -f charts/tend/crds/*.yaml
	@cp api/crds/*.yaml charts/tend/crds/
	@cp policies/bundle/default.yaml charts/tend/files/default-policy.yaml
	$(GO) run ./hack/chartgen charts/tend/templates
	$(GO) test ./internal/localstack -run '^TestChartGolden$$' -count=1 -update

.PHONY: verify
verify: generate $(HELM) ## Fail when generated files are stale, code is unformatted, vet complains, or the chart does not lint
	@if [ -n "$$(git status --porcelain -- api controllers/rbac charts/tend/crds charts/tend/files charts/tend/templates internal/localstack/testdata/chart)" ]; then \
		echo "Generated files are stale; run 'make generate' and commit:"; git status --porcelain -- api controllers/rbac charts/tend/crds charts/tend/files charts/tend/templates; exit 1; fi
	@if [ -n "$$(gofmt -l $$(git ls-files '*.go'))" ]; then echo "Not gofmt-ed:"; gofmt -l $$(git ls-files '*.go'); exit 1; fi
	$(GO) vet ./...
	$(GO) mod tidy -diff
	$(HELM) lint --strict charts/tend
	@missing=$$(git ls-files '*.go' | grep -v '_test.go$$' | grep -v '^hack/' | xargs -n1 dirname | sort -u | while read -r d; do [ -f "$$d/doc.go" ] || echo "$$d"; done); \
		if [ -n "$$missing" ]; then echo "Packages without doc.go: $$missing"; exit 1; fi

.PHONY: test
test: tools ## Run every test: unit, integration (envtest + embedded NATS) and end to end (kwok cluster)
	$(GO) test -count=1 -timeout 20m ./...

.PHONY: test-short
test-short: ## Run the tests without the kwok end-to-end ones (unit and envtest)
	$(GO) test -count=1 -short ./...

# Benchmark areas of `make bench`: each runs the benchmarks of one package
# that match a pattern, and names the suffix of its reference benchmarks
# (Benchmark<Name><Ref> measures what Benchmark<Name> does, with another
# tool); hack/benchjson explains how results become bench/results.json
# entries. To add an area, list it in BENCH_AREAS and set its three variables;
# BENCH_TIME_<area>, BENCH_REPEAT_<area> (runs of the whole area, their
# median recorded) and BENCH_TIMEOUT_<area> are optional.
BENCH_AREAS    := gate
BENCH_PKG_gate := ./policies
BENCH_RUN_gate := ^BenchmarkGate
BENCH_REF_gate := OPA
# The gate's p99 is a few microseconds of a run's pauses: three runs, taking
# turns with OPA, and the median of each side, as for the bus below.
BENCH_REPEAT_gate := 3
BENCH_AREAS    += mcp
BENCH_PKG_mcp  := ./mcp
BENCH_RUN_mcp  := ^BenchmarkMCP
BENCH_REF_mcp  := RawHTTP
BENCH_AREAS    += bus
BENCH_PKG_bus  := ./bus ./internal/localstack
BENCH_RUN_bus  := ^Benchmark(Bus|SensorMemory)
BENCH_REF_bus  := JetStream
# The bus's p99 rests on a few pauses of a few milliseconds a second
# (collections, the virtual machine's): 10 s per figure, not 3, counts
# more of them. And the area runs three times over, so that tend's path and
# the reference take turns (go test -count would run one side's three
# runs, then the other's, a minute apart on a machine whose noise drifts
# by the minute); the median of the three of each side is recorded.
BENCH_TIME_bus   := 10s
BENCH_REPEAT_bus := 3
BENCH_AREAS    += shim
BENCH_PKG_shim := ./runtime-shim
BENCH_RUN_shim := ^BenchmarkShim
BENCH_REF_shim := Crictl
BENCH_AREAS    += improve
BENCH_PKG_improve := ./agents
BENCH_RUN_improve := ^BenchmarkImprove
BENCH_REF_improve := Sort
BENCH          ?= $(BENCH_AREAS)
BENCHTIME      ?= 3s
# The scale benchmark (`make bench BENCH=scale`, about 20 minutes) is not in
# the default run: a kwok cluster at 100, 300 and 1,000 nodes (TEND_SCALE_NODES
# chooses), each measured once; its reference, a bare informer, runs inside
# it and its ratio is one of its figures.
BENCH_PKG_scale     := ./internal/scalebench
BENCH_RUN_scale     := ^BenchmarkScale$$
BENCH_REF_scale     :=
BENCH_TIME_scale    := 1x
BENCH_TIMEOUT_scale := 60m

.PHONY: bench
bench: $(if $(filter shim,$(BENCH)),$(BIN)/crictl) ## Run the benchmarks of every area, or of BENCH=<area> (gate, mcp, bus, shim, improve, scale), into bench/results.json
	@$(foreach a,$(BENCH),$(if $(BENCH_PKG_$(a)),,$(error Unknown benchmark area "$(a)"; the areas are: $(BENCH_AREAS) scale)))
	$(foreach a,$(BENCH),set -o pipefail; for run in $(wordlist 1,$(or $(BENCH_REPEAT_$(a)),1),1 2 3 4 5 6 7 8 9); do $(GO) test -run '^$$' -bench '$(BENCH_RUN_$(a))' -benchtime $(or $(BENCH_TIME_$(a)),$(BENCHTIME)) -timeout $(or $(BENCH_TIMEOUT_$(a)),10m) $(BENCH_PKG_$(a)) || exit 1; done | $(GO) run ./hack/benchjson -area $(a) -reference '$(BENCH_REF_$(a))';)

.PHONY: images
images: ## Build tend's container images (static binaries on an empty root, no Docker, no base pulled) as OCI archives in bin/images, and print their digests
	$(GO) run ./hack/images --out $(BIN)/images

.PHONY: demo
demo: tools build ## Run the demo: a bad rollout healed on the local stack, narrated
	$(TEND) demo

.PHONY: up
up: tools build ## Run the local stack in the foreground (Ctrl-C stops it)
	$(TEND) up

.PHONY: evals
evals: tools build ## Run the whole eval suite (3 runs per scenario) on the local stack into evals/out/
	$(TEND) eval run evals/scenarios --runs 3 --out evals/out

.PHONY: clean
clean: ## Remove bin/ and the local stack's work dir (the tools cache stays)
	rm -rf $(BIN) .tend
