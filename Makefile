# SPDX-License-Identifier: GPL-2.0
#
# armsi: out-of-tree Rust modules for safe MSI passthrough on arm64.
#
#   make run           boot QEMU virt, load the modules, show what they do
#   make check         host unit tests + the in-guest kselftest suite
#   make               build the modules against $(KDIR)
#   make modules_install INSTALL_MOD_PATH=...
#
# KDIR defaults to the project's cached test kernel (built on demand by
# `make kernel`); point it at any configured and built 7.3 tree with
# CONFIG_RUST=y to build the modules for your own kernel.

CACHE        ?= $(or $(ARMSI_CACHE),$(or $(XDG_CACHE_HOME),$(HOME)/.cache)/armsi)
VARIANT      ?= debug
KDIR         ?= $(CACHE)/kernel-$(VARIANT)/build
RUSTC_VER    := $(shell rustc --version 2>/dev/null | awk '{print $$2}')
RUST_LIB_SRC ?= /usr/src/rustc-$(RUSTC_VER)/library
BINDGEN      ?= $(CACHE)/cargo/bin/bindgen
KMAKE        := $(MAKE) -C $(KDIR) M=$(CURDIR) ARCH=arm64 LLVM=-19 \
		RUST_LIB_SRC=$(RUST_LIB_SRC) BINDGEN=$(BINDGEN)

# Machine shape for run/check: gicv3 (GICv3 + ITS, default) or gicv2m.
MACHINE      ?= gicv3
# edu's DMA mask (28 bits by default) is raised so that a nested guest's
# addresses (RAM at 1 GiB) fit when edu is assigned to it.
DEVICES      ?= edu,dma_mask=0xffffffffff igb
MEM          ?= 2048
# make run also packs Debian's QEMU and runs a nested guest: more memory.
RUN_MEM      ?= 3072
# A directory of the user's own static aarch64 test binaries to run too.
EXTRA_TESTS  ?=

.PHONY: all modules modules_install clean setup kernel kernel-perf run check \
	guest-tests fmt bench profile

all: modules

modules:
	$(KMAKE) modules

modules_install:
	$(KMAKE) modules_install

clean:
	$(KMAKE) clean 2>/dev/null || true
	$(MAKE) -C $(KDIR) M=$(CURDIR)/tests/kmod clean 2>/dev/null || true
	$(MAKE) -C $(KDIR) M=$(CURDIR)/tests/vmm/l2 clean 2>/dev/null || true
	rm -rf build tests/host/target

setup:
	scripts/setup-toolchain.sh

kernel: setup
	scripts/build-kernel.sh $(VARIANT)

kernel-perf: setup
	scripts/build-kernel.sh perf

# Everything the guest needs: modules, our tests, the peer suites.
guest-tests: kernel
	$(MAKE) modules
	scripts/build-guest-tests.sh $(VARIANT)

run: kernel
	$(MAKE) modules
	scripts/build-guest-tests.sh $(VARIANT)
	scripts/vm.py run --variant $(VARIANT) --machine $(MACHINE) \
		--devices "$(DEVICES)" --mem $(RUN_MEM) --vmm

check: kernel
	$(MAKE) modules
	scripts/build-guest-tests.sh $(VARIANT)
	scripts/check.sh --variant $(VARIANT) --machine $(MACHINE) \
		--devices "$(DEVICES)" --mem $(MEM) $(if $(EXTRA_TESTS),--extra-tests $(EXTRA_TESTS))

# Benchmarks against the upstream C code on the non-debug kernel.
bench: kernel-perf
	BENCH_ONLY="$(BENCH_ONLY)" scripts/bench.sh

# Instructions per function, ours against upstream, under a QEMU TCG plugin:
# PROFILE=unmap_4k, lpi_single, msi_rtt or selftest (scripts/profile.sh).
PROFILE      ?=
profile: $(if $(filter selftest,$(PROFILE)),setup,kernel-perf)
	scripts/profile.sh $(PROFILE)

fmt:
	rustfmt --edition 2021 --config-path $(CACHE)/kernel-$(VARIANT)/src/.rustfmt.toml $(shell find rust tests/vmm -name "*.rs")
	cd tests/host && cargo fmt
