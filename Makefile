# The single entry point: run, test, lint, bench, demo. Each target sets up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test lint format bench demo clean postgres java-maven kustomize prometheus dashboards chromium

# The tests start their own PostgreSQL cluster from Debian's postgresql package's binaries.
POSTGRES_INITDB = $(firstword $(wildcard /usr/lib/postgresql/*/bin/initdb))

# The broker tests run on the embedded broker and on Apache Kafka (newsalert/localkafka.py),
# which needs Java 17+ and, to fetch its jars the first time, Maven. `make test BROKERS=embedded`
# (or kafka) runs one of them only.
BROKERS ?= both
JAVA_MAJOR = $(shell java -version 2>&1 | sed -n '1s/.*version "\([0-9]*\).*/\1/p')

# The one notice every editable install prints ("Editable installation...", setuptools'
# InformationOnly note, not a problem of ours) is filtered; any other warning shows.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	PYTHONWARNINGS="ignore:Editable installation" \
		$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

# The XML parse path compiled with mypyc (connectors/compiled.py), rebuilt when a source changes.
COMPILED_SOURCES := $(addprefix connectors/,feeddates.py xmlfeed.py xmltext.py xmlwalk.py)
COMPILED := $(VENV)/.compiled-stamp

$(COMPILED): $(STAMP) $(COMPILED_SOURCES) connectors/base.py connectors/compiled.py
	$(BIN)/python -m connectors.compiled
	touch $(COMPILED)

# The story index in Rust (streams/stories/native.py), rebuilt when its crate changes. Without
# cargo, or when the build fails (e.g. crates.io out of reach), it is not built and the Python
# implementation runs (the same results, slower); the tests then fail where cargo is installed.
NATIVE := streams/stories/_storyindex.abi3.so
NATIVE_SOURCES := $(wildcard streams/stories/storyindex/src/*.rs) \
	streams/stories/storyindex/Cargo.toml streams/stories/storyindex/Cargo.lock

$(NATIVE): $(STAMP) $(NATIVE_SOURCES) streams/stories/native.py
	@if command -v cargo >/dev/null; then \
		$(BIN)/python -m streams.stories.native \
		|| echo "the story index did not build: it runs as Python (streams/stories/native.py)"; \
	else \
		echo "cargo not found: the story index runs as Python (streams/stories/native.py)"; \
	fi

BUILT := $(COMPILED) $(NATIVE)

run: $(BUILT)
	$(BIN)/newsalert run $(ARGS)

demo: $(BUILT)
	$(BIN)/newsalert demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

postgres:
	@if [ -z "$(POSTGRES_INITDB)" ]; then \
		echo "installing Debian's postgresql package (the tests start a throwaway cluster)"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get install -y --no-install-recommends postgresql \
		|| { $$SUDO apt-get update && $$SUDO apt-get install -y --no-install-recommends postgresql; }; \
	fi

# promtool checks deploy/prometheus/ and a real Prometheus runs the dashboards' queries.
prometheus:
	@if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null; then \
		echo "installing Debian's prometheus package (promtool and a Prometheus for the tests)"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get install -y --no-install-recommends prometheus \
		|| { $$SUDO apt-get update && $$SUDO apt-get install -y --no-install-recommends prometheus; }; \
	fi

# The browser tests (tests/e2e/test_web_browser.py) drive Debian's headless Chromium with
# Selenium through chromedriver (Playwright's own browser download is not reachable everywhere).
chromium:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
		echo "installing Debian's chromium and chromium-driver (the browser tests)"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get install -y --no-install-recommends chromium chromium-driver \
		|| { $$SUDO apt-get update && $$SUDO apt-get install -y --no-install-recommends chromium chromium-driver; }; \
	fi

# The Grafana dashboards' JSON, from deploy/grafana/dashboards.py (a test checks it is current).
dashboards: $(STAMP)
	$(BIN)/python deploy/grafana/dashboards.py

# Debian 12 and Ubuntu 22.04+ have openjdk-17; elsewhere the default JRE (17 or newer there).
java-maven:
	@if [ "$(BROKERS)" != embedded ] && { ! command -v mvn >/dev/null \
		|| [ -z "$(JAVA_MAJOR)" ] || [ "$(JAVA_MAJOR)" -lt 17 ]; }; then \
		echo "installing Java 17+ and Maven (the tests run Apache Kafka; BROKERS=embedded skips it)"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		add_java_maven() { $$SUDO apt-get install -y --no-install-recommends maven openjdk-17-jre-headless \
			|| $$SUDO apt-get install -y --no-install-recommends maven default-jre-headless; }; \
		add_java_maven || { $$SUDO apt-get update && add_java_maven; }; \
	fi

# tests/deploy renders deploy/k8s with kustomize, installed with `go install` into
# $(go env GOPATH)/bin, where the tests look for it, unless it is on PATH or there already. No Go:
# Debian's golang-go first (Go 1.21+ fetches the toolchain kustomize's go.mod asks for; v5.8 would
# need Go 1.27). A failed install does not stop `make test`: the k8s tests then fail, saying why.
KUSTOMIZE_VERSION := v5.7.1

kustomize:
	@if ! command -v go >/dev/null && ! command -v kustomize >/dev/null; then \
		echo "installing Debian's golang-go (to build kustomize for the k8s tests)"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get install -y --no-install-recommends golang-go \
		|| { $$SUDO apt-get update && $$SUDO apt-get install -y --no-install-recommends golang-go; } \
		|| echo "WARNING: Go could not be installed; the k8s tests will fail"; \
	fi
	@GOBIN_DIR="$$(go env GOPATH 2>/dev/null)/bin"; \
	if ! command -v kustomize >/dev/null && [ ! -x "$$GOBIN_DIR/kustomize" ] && command -v go >/dev/null; then \
		echo "installing kustomize $(KUSTOMIZE_VERSION) into $$GOBIN_DIR (the k8s tests render deploy/k8s)"; \
		GOBIN="$$GOBIN_DIR" go install sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION) \
		|| echo "WARNING: kustomize $(KUSTOMIZE_VERSION) could not be installed; the k8s tests will fail"; \
	fi

test: $(BUILT) lint postgres java-maven kustomize prometheus chromium
	$(BIN)/pytest -q --broker-kind $(BROKERS) $(PYTEST_ARGS)

# `make bench ARGS="--kafka --articles 20000 --rounds 1"`: README "Performance".
bench: $(BUILT)
	$(BIN)/python -m bench $(ARGS)

clean:
	rm -rf $(VENV) newsalert-data .pytest_cache .ruff_cache build connectors/*.so streams/stories/*.so
