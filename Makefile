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
# bpf_tracing.h's name for this machine's architecture (x86_64 -> x86, aarch64 -> arm64).
BPF_ARCH    := $(patsubst x86_64,x86,$(patsubst aarch64,arm64,$(shell uname -m)))
BPF_CFLAGS  := -O2 -g -Wall -Werror -target bpf -D__TARGET_ARCH_$(BPF_ARCH) -I$(ARCH_INC) -Ibpf

# Debian packages: what running needs, and what the tests need on top.
RUN_PKGS    := clang llvm libbpf-dev libbpf1 bpftool iproute2 libc6-dev
TEST_PKGS   := $(RUN_PKGS) ethtool tcpdump tshark sqlite3 iperf3 prometheus systemd procps e2fsprogs chromium \
               ngtcp2-server ngtcp2-client openssl
DEPS_STAMP  := $(BUILD)/.deps

.PHONY: all build bpf web publish run test test-unit deps deps-run deps-test bench bench-bpf probes bench-scrape \
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

# The dashboard (web/): npm packages from the committed lockfile (npm ci; offline from the npm
# cache once they were fetched), bundled by esbuild into web/dist/, which the csproj embeds in the
# binary (its build runs this target). Node is needed to build, never to run.
WEB_SRC     := web/package.json web/package-lock.json web/build.mjs $(wildcard web/src/*)
WEB_OUT     := web/dist/app.js
WEB_MODULES := web/node_modules/.package-lock.json
web: $(WEB_OUT)
$(WEB_MODULES): web/package-lock.json
	@command -v npm >/dev/null || { echo "error: node and npm (v18 or later) are needed to build the dashboard in web/ — install them and retry" >&2; exit 1; }
	cd web && { npm ci --offline --no-audit --no-fund --loglevel=error || npm ci --no-audit --no-fund --loglevel=error; }
	@touch $@
$(WEB_OUT): $(WEB_MODULES) $(WEB_SRC)
	cd web && node build.mjs

# Native AOT: one self-contained executable (plus SQLite's libe_sqlite3.so beside it), no .NET
# runtime on the host, no JIT (so the unit can set MemoryDenyWriteExecute=yes), and half the
# memory of a JIT build (bench-scrape: 59 MB RSS at 10,000 clients against 116 MB).
# Incremental: $(BIN) is published again only when a source is newer than it (`make -B build`
# forces it), so a second `make run` or `make test` on an unchanged tree starts at once.
build: $(BIN) $(BPF_OBJ)

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
run: deps-run $(BIN) $(BPF_OBJ)
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
# flood-xdp.bpf.c is flood-frags-xdp.bpf.c built for a target that is not frags-aware.
$(BUILD)/probes/flood-xdp.bpf.o: bench/probes/flood-frags-xdp.bpf.c
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
bench-traffic: deps-test $(BIN) $(BPF_OBJ)
	bench/traffic.sh $(CURDIR)/$(BIN)

# A longer crash soak than the one in make test: the shipped daemon SIGKILLed 10 times under traffic.
soak: deps-test check-dotnet $(BIN) $(BPF_OBJ)
	@set -o pipefail; CI=true SOAK_KILLS=$${SOAK_KILLS:-10} COLLECTOR_BIN=$(CURDIR)/$(BIN) BPF_OBJECT=$(CURDIR)/$(BPF_OBJ) \
	    $(DOTNET) test SiaExporter.sln -c Release --nologo --logger "console;verbosity=detailed" --filter "Category=Soak"

# ---------------------------------------------------------------- install
# sudo make install [PREFIX=/usr/local] [DESTDIR=/staging]: the binary, the BPF object, the unit
# and (only when missing, never overwritten) /etc/collector.env; enabled and (re)started when
# systemd runs here and DESTDIR is empty. install only rebuilds what is older than its sources,
# so `make build && sudo make install` does not publish twice.
SOURCES     := $(shell find src -type f \( -name '*.cs' -o -name '*.csproj' -o -name '*.awk' \) -not -path '*/obj/*' -not -path '*/bin/*' 2>/dev/null) \
               Directory.Build.props $(wildcard bpf/*.h) $(WEB_SRC)
# Where install records that it created the env file (uninstall removes it only then).
ENV_MARKER  := $(STATEDIR)/.env-created-by-install
# Pins are kernel-global, not under DESTDIR: a staged uninstall touches them only when PINDIR
# is given explicitly (make uninstall DESTDIR=... PINDIR=/sys/fs/bpf/x), never the live daemon's.
PIN_CLEANUP  = $(if $(DESTDIR),$(filter command line environment,$(origin PINDIR)),yes)

$(BIN): $(SOURCES) | check-dotnet
	$(DOTNET) publish src/SiaExporter/SiaExporter.csproj -c Release -r $(RID) --self-contained \
	    -p:PublishAot=true -o $(BUILD) --nologo -v quiet
	@rm -f $(BUILD)/*.dbg $(BUILD)/*.staticwebassets.endpoints.json
	@touch $@
	@echo "built $(BIN)"

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
	rm -rf $(BUILD) data $(DIST) web/dist
	$(DOTNET) clean SiaExporter.sln --nologo -v quiet >/dev/null 2>&1 || true

# ---------------------------------------------------------------- packages (make deb, make test-packages)
# sudo make deb: dist/collector_<version>_{amd64,arm64}.deb, one CycloneDX SBOM per package and
# dist/SHA256SUMS. Native AOT for each architecture (arm64 cross-compiled with the aarch64 cross
# toolchain and lld; its libraries from Debian multiarch), the BPF object compiled per architecture.
# The version comes from git (scripts/version.sh); SOURCE_DATE_EPOCH (default: the last commit's
# time) makes two builds of one commit byte-identical (make deb-reproducible checks it).
# Work files under build/deb/<arch>/ (a separate obj/ tree: packaging never disturbs make build).
DIST          := dist
DEB_ARCHS     := amd64 arm64
DEB_VERSION   := $(shell scripts/version.sh 2>/dev/null)
DEB_WORK      := $(BUILD)/deb
DEBS          := $(foreach a,$(DEB_ARCHS),$(DIST)/collector_$(DEB_VERSION)_$(a).deb)
SBOMS         := $(foreach a,$(DEB_ARCHS),$(DIST)/collector_$(DEB_VERSION)_$(a).cdx.json)
DEB_PKGS      := $(RUN_PKGS) dpkg-dev lintian python3 file gcc-aarch64-linux-gnu binutils-aarch64-linux-gnu \
                 libc6-dev-arm64-cross lld
DEB_ARM64_PKGS := libc6:arm64 libbpf1:arm64
TEST_PACKAGES_PKGS := $(DEB_PKGS) debootstrap systemd-container qemu-user-static sqlite3 curl
# Fixed once per make (not re-read per recipe: a commit made during a build must not change them).
ifndef SOURCE_DATE_EPOCH
SOURCE_DATE_EPOCH := $(shell git log -1 --format=%ct 2>/dev/null)
endif
ifndef DEB_COMMIT
DEB_COMMIT    := $(shell git rev-parse HEAD 2>/dev/null)
endif
export SOURCE_DATE_EPOCH DEB_COMMIT
rid_amd64     := linux-x64
rid_arm64     := linux-arm64
bpfarch_amd64 := x86
bpfarch_arm64 := arm64
inc_amd64     := /usr/include/x86_64-linux-gnu
inc_arm64     := /usr/aarch64-linux-gnu/include
# Cross linking: lld with the host's / as sysroot (the cross libc.so holds absolute paths that
# lld cannot follow with SysRoot=/usr/aarch64-linux-gnu).
aotflags_amd64 :=
aotflags_arm64 := -p:LinkerFlavor=lld -p:SysRoot=/

.PHONY: deb deb-deps deb-lint deb-reproducible test-packages FORCE
# Kept between runs (make would delete them as intermediates of the pattern rules).
.PRECIOUS: $(DEB_WORK)/%/publish/collector $(DEB_WORK)/%/collector.bpf.o

deb: $(DIST)/SHA256SUMS deb-lint

deb-deps:
	@scripts/ensure-packages.sh $(DEB_PKGS)
	@scripts/ensure-foreign-arch.sh arm64
	@scripts/ensure-packages.sh $(DEB_ARM64_PKGS)

# The version every packaged binary was built with: rewritten only when it changes.
$(DEB_WORK)/version: FORCE
	@mkdir -p $(@D)
	@echo '$(DEB_VERSION)' | cmp -s - $@ || echo '$(DEB_VERSION)' > $@

$(DEB_WORK)/%/collector.bpf.o: bpf/collector.bpf.c bpf/collector.h $(wildcard bpf/*.h) | deb-deps
	@mkdir -p $(@D)
	$(CLANG) -O2 -g -Wall -Werror -target bpf -D__TARGET_ARCH_$(bpfarch_$*) -I$(inc_$*) -Ibpf \
	    -fdebug-prefix-map=$(CURDIR)=. -c bpf/collector.bpf.c -o $@

# Deterministic: ContinuousIntegrationBuild maps source paths to /_/; the .gnu_debuglink (a CRC of
# the separate .dbg, which holds build paths) is removed with the .dbg.
$(DEB_WORK)/%/publish/collector: $(SOURCES) $(DEB_WORK)/version | deb-deps check-dotnet
	rm -rf $(DEB_WORK)/$*/publish
	$(DOTNET) publish src/SiaExporter/SiaExporter.csproj -c Release -r $(rid_$*) --self-contained \
	    -p:PublishAot=true $(aotflags_$*) -p:InformationalVersion=$(DEB_VERSION) \
	    -p:IncludeSourceRevisionInInformationalVersion=false -p:ContinuousIntegrationBuild=true \
	    --artifacts-path $(DEB_WORK)/$*/artifacts -o $(DEB_WORK)/$*/publish --nologo -v quiet
	llvm-objcopy --remove-section=.gnu_debuglink $@
	@rm -f $(DEB_WORK)/$*/publish/*.dbg

$(DIST)/collector_$(DEB_VERSION)_%.deb: $(DEB_WORK)/%/publish/collector $(DEB_WORK)/%/collector.bpf.o \
        scripts/build-deb.sh $(wildcard packaging/debian/*) collector.service collector.env.example README.md
	@mkdir -p $(DIST)
	scripts/build-deb.sh $* $(DEB_VERSION) $(DEB_WORK)/$*/publish $(DEB_WORK)/$*/collector.bpf.o $@

$(DIST)/collector_$(DEB_VERSION)_%.cdx.json: $(DIST)/collector_$(DEB_VERSION)_%.deb scripts/sbom.py
	python3 scripts/sbom.py $* $(DEB_VERSION) $(DEB_WORK)/$*/artifacts/obj/SiaExporter/project.assets.json $< $@

# Packages of other versions are removed from dist/: SHA256SUMS lists what is there.
$(DIST)/SHA256SUMS: $(DEBS) $(SBOMS)
	@find $(DIST) -maxdepth 1 -name 'collector_*' $(foreach f,$(DEBS) $(SBOMS),! -name $(notdir $(f))) -delete
	cd $(DIST) && sha256sum $(notdir $(DEBS) $(SBOMS)) > SHA256SUMS
	@cat $@

# lintian on both packages: clean except the overrides explained in packaging/debian/lintian-overrides.
deb-lint: $(DEBS)
	lintian --fail-on error,warning $(DEBS)

# sudo make test-packages: both packages as a user gets them (tests/packages/test-packages.sh): the
# amd64 .deb installed with apt into a minimal Debian booted by systemd-nspawn (systemd as PID 1,
# its own veth; the debootstrap tree is cached in build/packages/), and the arm64 binary under
# qemu-user against the database the amd64 one wrote. ≈ 10 min from scratch, ≈ 2 min when the
# packages and the tree are built. .ci/run runs it after make test.
test-packages: deb
	@scripts/ensure-packages.sh $(TEST_PACKAGES_PKGS)
	tests/packages/test-packages.sh $(DIST)/collector_$(DEB_VERSION)_amd64.deb $(DIST)/collector_$(DEB_VERSION)_arm64.deb

# Builds both packages a second time from nothing (no obj/, no published binary) in the same
# directory and compares them, and their SBOMs, with the first build byte for byte. The directory
# is part of the input: the C# compiler names file-local types of generated sources (ASP.NET's
# request delegate generator) after a hash of the generated file's absolute path, so a checkout
# elsewhere gives a binary that differs in those names (measured: .rodata, 0.5 MB of 17 MB).
deb-reproducible: deb
	rm -rf $(BUILD)/repro && mkdir -p $(BUILD)/repro && cp -a $(DIST)/. $(BUILD)/repro/
	rm -rf $(DIST) $(foreach a,$(DEB_ARCHS),$(DEB_WORK)/$(a)/publish $(DEB_WORK)/$(a)/artifacts $(DEB_WORK)/$(a)/collector.bpf.o)
	$(MAKE) --no-print-directory $(DIST)/SHA256SUMS
	cd $(BUILD)/repro && sha256sum --strict -c $(CURDIR)/$(DIST)/SHA256SUMS
	@echo "two builds of $(DEB_VERSION) (SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH)) are byte-identical"
