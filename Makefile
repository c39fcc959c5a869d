# sia-exporter — build, run, test, install.
#   sudo make run    attach to the default-route interface, serve /metrics, history in ./data/traffic.db
#   sudo make test   every test (unit, BPF_PROG_TEST_RUN, veth end to end, real Prometheus, promtool)
# Both install the Debian packages they need when missing.

SHELL := /bin/bash
.DEFAULT_GOAL := build

PREFIX      ?= /usr/local
DESTDIR     ?=
BINDIR      := $(PREFIX)/bin
UNITDIR     ?= /etc/systemd/system
STATEDIR    ?= /var/lib/collector
CONFIG      ?= /etc/collector.env
PINDIR      ?= /sys/fs/bpf/collector

BUILD       := build
BPF_OBJ     := $(BUILD)/collector.bpf.o
BIN         := $(BUILD)/collector
RID         := linux-x64
DOTNET      ?= dotnet
export DOTNET_CLI_TELEMETRY_OPTOUT := 1
export DOTNET_NOLOGO := 1
export DOTNET_SKIP_FIRST_TIME_EXPERIENCE := 1
export DOTNET_CLI_HOME ?= $(if $(HOME),$(HOME),/root)

CLANG       ?= clang
ARCH_INC    := /usr/include/$(shell uname -m)-linux-gnu
BPF_CFLAGS  := -O2 -g -Wall -Werror -target bpf -D__TARGET_ARCH_x86 -I$(ARCH_INC) -Ibpf

# Debian packages: what running needs, and what the tests need on top.
RUN_PKGS    := clang llvm libbpf-dev libbpf1 bpftool iproute2 libc6-dev
TEST_PKGS   := $(RUN_PKGS) ethtool tcpdump tshark sqlite3 iperf3 prometheus systemd procps
DEPS_STAMP  := $(BUILD)/.deps

.PHONY: all build bpf publish run test test-unit deps deps-run deps-test bench bench-bpf bench-scrape \
        bench-sqlite bench-traffic soak install uninstall clean check-dotnet

all: build

# ---------------------------------------------------------------- dependencies
deps-run: ; @scripts/ensure-packages.sh $(RUN_PKGS)
deps-test: ; @scripts/ensure-packages.sh $(TEST_PKGS)
deps: deps-test

check-dotnet:
	@command -v $(DOTNET) >/dev/null || { echo "error: the .NET 10 SDK (dotnet) is not installed — install it (https://learn.microsoft.com/dotnet/core/install/linux-debian) and retry" >&2; exit 1; }

# ---------------------------------------------------------------- build
bpf: $(BPF_OBJ)

$(BPF_OBJ): bpf/collector.bpf.c bpf/collector.h $(wildcard bpf/*.h)
	@mkdir -p $(BUILD)
	$(CLANG) $(BPF_CFLAGS) -c bpf/collector.bpf.c -o $@

# Self-contained single file: the host needs no .NET runtime.
build: check-dotnet $(BPF_OBJ)
	$(DOTNET) publish src/SiaExporter/SiaExporter.csproj -c Release -r $(RID) --self-contained \
	    -p:PublishSingleFile=true -p:IncludeNativeLibrariesForSelfExtract=true -o $(BUILD) --nologo -v quiet
	@echo "built $(BIN) and $(BPF_OBJ)"

# ---------------------------------------------------------------- run
# History in ./data/traffic.db unless SQLITE_PATH says otherwise; settings from /etc/collector.env
# (if present), the environment, or ARGS (e.g. make run ARGS="--interface eth1").
run: deps-run build
	@mkdir -p data
	SQLITE_PATH=$${SQLITE_PATH:-./data/traffic.db} STATE_DIRECTORY=$${STATE_DIRECTORY:-./data} \
	    BPF_OBJECT=$${BPF_OBJECT:-$(BPF_OBJ)} ./$(BIN) run $(ARGS)

# ---------------------------------------------------------------- test
# Every test, as root. Kernel tests fail (never skip) under CI=true.
test: deps-test check-dotnet $(BPF_OBJ)
	@set -o pipefail; BPF_OBJECT=$(CURDIR)/$(BPF_OBJ) $(DOTNET) test SiaExporter.sln -c Release --nologo \
	    --logger "console;verbosity=normal" $(if $(FILTER),--filter "$(FILTER)") 2>&1 | tee $(BUILD)/test.log; \
	  status=$$?; scripts/test-summary.sh $(BUILD)/test.log; exit $$status

# ---------------------------------------------------------------- benchmarks (not tests)
BENCH = $(DOTNET) run -c Release --project bench/SiaExporter.Bench --
bench: bench-bpf bench-scrape bench-sqlite bench-traffic
bench-bpf: deps-test check-dotnet $(BPF_OBJ)
	BPF_OBJECT=$(CURDIR)/$(BPF_OBJ) $(BENCH) bpf
bench-scrape: deps-test check-dotnet $(BPF_OBJ)
	BPF_OBJECT=$(CURDIR)/$(BPF_OBJ) $(BENCH) scrape
bench-sqlite: check-dotnet
	$(BENCH) sqlite
bench-traffic: deps-test build
	bench/traffic.sh $(CURDIR)/$(BIN)

# ---------------------------------------------------------------- install
install: build
	install -D -m 0755 $(BIN) $(DESTDIR)$(BINDIR)/collector
	install -D -m 0644 $(BPF_OBJ) $(DESTDIR)$(STATEDIR)/bpf/collector.bpf.o
	install -D -m 0644 collector.service $(DESTDIR)$(UNITDIR)/collector.service
	@if [ ! -e $(DESTDIR)$(CONFIG) ]; then install -D -m 0600 collector.env.example $(DESTDIR)$(CONFIG); echo "created $(DESTDIR)$(CONFIG)"; \
	 else echo "kept existing $(DESTDIR)$(CONFIG)"; fi
	@if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then systemctl daemon-reload && systemctl enable --now collector.service && echo "collector.service enabled and started"; \
	 else echo "systemd is not running here (or DESTDIR is set): start it with $(DESTDIR)$(BINDIR)/collector run"; fi

uninstall:
	-@if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then systemctl disable --now collector.service 2>/dev/null; fi
	-@if [ -x $(DESTDIR)$(BINDIR)/collector ]; then PIN_DIRECTORY=$(PINDIR) $(DESTDIR)$(BINDIR)/collector detach --purge; fi
	@# Removing the pins also detaches pinned links that no process holds any more.
	-@[ -n "$(DESTDIR)" ] || rm -rf $(PINDIR)
	rm -f $(DESTDIR)$(BINDIR)/collector $(DESTDIR)$(UNITDIR)/collector.service $(DESTDIR)$(CONFIG)
	rm -rf $(DESTDIR)$(STATEDIR)
	-@if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then systemctl daemon-reload; fi

clean:
	rm -rf $(BUILD) data
	$(DOTNET) clean SiaExporter.sln --nologo -v quiet >/dev/null 2>&1 || true
