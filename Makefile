# sia-exporter — build, run, test, install.
#   sudo make run    attach to the default-route interface, serve /metrics, history in ./data/traffic.db
#   sudo make test   every test (unit, BPF_PROG_TEST_RUN, veth end to end, real Prometheus, promtool)
# Both install the Debian packages they need when missing.

SHELL := /bin/bash
.DEFAULT_GOAL := build

PREFIX      ?= /usr/local
DESTDIR     ?=
BINDIR      := $(PREFIX)/bin
LIBDIR      := $(PREFIX)/lib/collector
UNITDIR     ?= /etc/systemd/system
STATEDIR    ?= /var/lib/collector
CONFIG      ?= /etc/collector.env
# The pin directory uninstall cleans: PIN_DIRECTORY of the installed env file, else the default.
PINDIR      ?= $(or $(shell sed -n 's/^[[:space:]]*PIN_DIRECTORY=//p' $(DESTDIR)$(CONFIG) 2>/dev/null | tail -n1 | tr -d "\"' "),/sys/fs/bpf/collector)

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
TEST_PKGS   := $(RUN_PKGS) ethtool tcpdump tshark sqlite3 iperf3 prometheus systemd procps e2fsprogs \
               ngtcp2-server ngtcp2-client openssl
DEPS_STAMP  := $(BUILD)/.deps

.PHONY: all build bpf publish run test test-unit deps deps-run deps-test bench bench-bpf probes bench-scrape \
        bench-sqlite bench-traffic soak install uninstall clean check-dotnet docs

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

# Native AOT: one self-contained executable (plus SQLite's libe_sqlite3.so beside it), no .NET
# runtime on the host, no JIT (so the unit can set MemoryDenyWriteExecute=yes), and half the
# memory of a JIT build (bench-scrape: 59 MB RSS at 10,000 clients against 116 MB).
build: check-dotnet $(BPF_OBJ)
	$(DOTNET) publish src/SiaExporter/SiaExporter.csproj -c Release -r $(RID) --self-contained \
	    -p:PublishAot=true -o $(BUILD) --nologo -v quiet
	@rm -f $(BUILD)/*.dbg $(BUILD)/*.staticwebassets.endpoints.json
	@echo "built $(BIN) and $(BPF_OBJ)"

# ---------------------------------------------------------------- docs
# collector.env.example and the settings table of docs/reference.md, from the settings table
# (src/SiaExporter/Hosting/SettingsTable.cs); a test fails when the committed files differ.
DOCS_RUN := $(DOTNET) run --project src/SiaExporter/SiaExporter.csproj -c Release --no-launch-profile --no-build --
docs: check-dotnet
	$(DOTNET) build src/SiaExporter/SiaExporter.csproj -c Release --nologo -v quiet
	@mkdir -p $(BUILD)
	$(DOCS_RUN) settings --env-example > $(BUILD)/collector.env.example
	mv $(BUILD)/collector.env.example collector.env.example
	$(DOCS_RUN) settings --update-reference $(CURDIR)/docs/reference.md

# ---------------------------------------------------------------- run
# History in ./data/traffic.db unless SQLITE_PATH says otherwise; settings from /etc/collector.env
# (if present), the environment, or ARGS (e.g. make run ARGS="--interface eth1").
run: deps-run build
	@mkdir -p data
	SQLITE_PATH=$${SQLITE_PATH:-./data/traffic.db} STATE_DIRECTORY=$${STATE_DIRECTORY:-./data} \
	    BPF_OBJECT=$${BPF_OBJECT:-$(BPF_OBJ)} ./$(BIN) run $(ARGS)

# ---------------------------------------------------------------- test
# Every test, as root. Kernel tests fail (never skip) under CI=true.
test: deps-test check-dotnet $(BPF_OBJ) $(BIN)
	@set -o pipefail; BPF_OBJECT=$(CURDIR)/$(BPF_OBJ) COLLECTOR_BIN=$(CURDIR)/$(BIN) $(DOTNET) test SiaExporter.sln -c Release --nologo \
	    --logger "console;verbosity=normal" $(if $(FILTER),--filter "$(FILTER)") 2>&1 | tee $(BUILD)/test.log; \
	  status=$$?; scripts/test-summary.sh $(BUILD)/test.log; exit $$status

# ---------------------------------------------------------------- benchmarks (not tests)
BENCH = $(DOTNET) run -c Release --project bench/SiaExporter.Bench --
bench: bench-bpf bench-scrape bench-sqlite bench-traffic
# The bpf bench's reference programs (empty XDP, one hash lookup, ...): one program a file in
# bench/probes, each compiled to build/probes/NAME.bpf.o.
PROBE_SRC := $(wildcard bench/probes/*.bpf.c)
PROBE_OBJ := $(patsubst bench/probes/%.bpf.c,$(BUILD)/probes/%.bpf.o,$(PROBE_SRC))
probes: $(PROBE_OBJ)
$(BUILD)/probes/%.bpf.o: bench/probes/%.bpf.c
	@mkdir -p $(BUILD)/probes
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@
bench-bpf: deps-test check-dotnet $(BPF_OBJ) $(PROBE_OBJ)
	BPF_OBJECT=$(CURDIR)/$(BPF_OBJ) PROBES=$(CURDIR)/$(BUILD)/probes $(BENCH) bpf
bench-scrape: deps-test check-dotnet $(BPF_OBJ) $(BIN)
	BPF_OBJECT=$(CURDIR)/$(BPF_OBJ) $(BENCH) scrape
	BPF_OBJECT=$(CURDIR)/$(BPF_OBJ) $(BENCH) scrape-daemon $(CURDIR)/$(BIN)
bench-sqlite: check-dotnet
	$(BENCH) sqlite
bench-traffic: deps-test build
	bench/traffic.sh $(CURDIR)/$(BIN)

# A longer crash soak than the one in make test: the shipped daemon SIGKILLed 10 times under traffic.
soak: deps-test check-dotnet build
	@set -o pipefail; CI=true SOAK_KILLS=$${SOAK_KILLS:-10} COLLECTOR_BIN=$(CURDIR)/$(BIN) BPF_OBJECT=$(CURDIR)/$(BPF_OBJ) \
	    $(DOTNET) test SiaExporter.sln -c Release --nologo --logger "console;verbosity=detailed" --filter "Category=Soak"

# ---------------------------------------------------------------- install
# sudo make install [PREFIX=/usr/local] [DESTDIR=/staging]: the binary, the BPF object, the unit
# and (only when missing, never overwritten) /etc/collector.env; enabled and (re)started when
# systemd runs here and DESTDIR is empty. install only rebuilds what is older than its sources,
# so `make build && sudo make install` does not publish twice.
SOURCES     := $(shell find src -type f \( -name '*.cs' -o -name '*.csproj' -o -name '*.awk' \) -not -path '*/obj/*' -not -path '*/bin/*' 2>/dev/null) \
               Directory.Build.props $(wildcard bpf/*.h)
# Where install records that it created the env file (uninstall removes it only then).
ENV_MARKER  := $(STATEDIR)/.env-created-by-install
# Pins are kernel-global, not under DESTDIR: a staged uninstall touches them only when PINDIR
# is given explicitly (make uninstall DESTDIR=... PINDIR=/sys/fs/bpf/x), never the live daemon's.
PIN_CLEANUP  = $(if $(DESTDIR),$(filter command line environment,$(origin PINDIR)),yes)

$(BIN): $(BPF_OBJ) $(SOURCES)
	$(MAKE) --no-print-directory build
	@touch $@

# The AOT binary loads SQLite (libe_sqlite3.so) from its own folder: both go to $(LIBDIR), and
# $(BINDIR)/collector is a relative symlink to it (the runtime resolves the link to find the library).
install: $(BIN) $(BPF_OBJ)
	install -D -m 0755 $(BIN) $(DESTDIR)$(LIBDIR)/collector
	install -D -m 0644 $(BUILD)/libe_sqlite3.so $(DESTDIR)$(LIBDIR)/libe_sqlite3.so
	install -d -m 0755 $(DESTDIR)$(BINDIR)
	ln -sfn $$(realpath -m --relative-to=$(BINDIR) $(LIBDIR))/collector $(DESTDIR)$(BINDIR)/collector
	install -d -m 0700 $(DESTDIR)$(STATEDIR)
	install -D -m 0644 $(BPF_OBJ) $(DESTDIR)$(STATEDIR)/bpf/collector.bpf.o
	install -d -m 0755 $(DESTDIR)$(UNITDIR)
	sed 's|^ExecStart=/usr/local/bin/collector|ExecStart=$(BINDIR)/collector|' collector.service > $(DESTDIR)$(UNITDIR)/collector.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/collector.service
	install -m 0644 collector.socket $(DESTDIR)$(UNITDIR)/collector.socket
	@if [ -e $(DESTDIR)$(CONFIG) ]; then echo "kept the existing $(DESTDIR)$(CONFIG)"; \
	 else install -D -m 0600 collector.env.example $(DESTDIR)$(CONFIG) && touch $(DESTDIR)$(ENV_MARKER) && \
	      echo "created $(DESTDIR)$(CONFIG) (all defaults: set INTERFACE there if the default route is not the Sia interface)"; fi
	@if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then \
	   systemctl daemon-reload && systemctl enable collector.service && systemctl restart collector.service && \
	   echo "collector.service enabled and (re)started: systemctl status collector; journalctl -u collector -f"; \
	 elif [ -n "$(DESTDIR)" ]; then \
	   echo "staged in $(DESTDIR); on the target: systemctl daemon-reload && systemctl enable --now collector.service"; \
	 else \
	   echo "systemd is not running here: start the daemon as root with $(BINDIR)/collector run (settings from $(CONFIG))"; fi

# Stops the service, takes every hook off (pinned links and netlink filters), removes the pinned
# counters, the binary, the unit, $(STATEDIR) (history included) and the env file if install
# created it (one that existed before install is kept). With DESTDIR, all of it inside DESTDIR.
uninstall:
	-@if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then systemctl disable --now collector.socket collector.service; fi
	@if [ -n "$(PIN_CLEANUP)" ]; then \
	   bin=$(DESTDIR)$(BINDIR)/collector; config=$(DESTDIR)$(CONFIG); [ -f "$$config" ] || config=/dev/null; \
	   if [ -x "$$bin" ]; then PIN_DIRECTORY=$(PINDIR) "$$bin" --config "$$config" detach --purge \
	     || echo "warning: collector detach failed; removing the pins in $(PINDIR) detaches what they hold" >&2; fi; \
	   case "$(PINDIR)" in /sys/fs/bpf/?*) rm -rf "$(PINDIR)";; *) echo "warning: PINDIR=$(PINDIR) is not under /sys/fs/bpf: not removed" >&2;; esac; \
	   if pgrep -x collector >/dev/null; then echo "note: a collector process still runs (started by hand?): stop it to detach its hooks" >&2; fi; \
	 else echo "DESTDIR set without PINDIR: left the kernel's pins alone"; fi
	@if [ -e $(DESTDIR)$(ENV_MARKER) ]; then rm -f $(DESTDIR)$(CONFIG); echo "removed $(DESTDIR)$(CONFIG)"; \
	 elif [ -e $(DESTDIR)$(CONFIG) ]; then echo "kept $(DESTDIR)$(CONFIG): it existed before make install"; fi
	rm -f $(DESTDIR)$(BINDIR)/collector $(DESTDIR)$(UNITDIR)/collector.service $(DESTDIR)$(UNITDIR)/multi-user.target.wants/collector.service
	rm -f $(DESTDIR)$(UNITDIR)/collector.socket $(DESTDIR)$(UNITDIR)/sockets.target.wants/collector.socket
	rm -rf $(DESTDIR)$(STATEDIR) $(DESTDIR)$(LIBDIR)
	-@if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then systemctl daemon-reload; fi

clean:
	rm -rf $(BUILD) data
	$(DOTNET) clean SiaExporter.sln --nologo -v quiet >/dev/null 2>&1 || true
