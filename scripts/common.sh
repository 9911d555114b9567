# SPDX-License-Identifier: GPL-2.0
# Shared settings for the scripts; sourced, not run.

# Where built artefacts live outside the repository.
CACHE=${ARMSI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/armsi}
KVER_MAJOR=7.3
KSRC_TARBALL="$CACHE/linux-source-$KVER_MAJOR.tar.xz"
BINDGEN_VER=0.71.1
BINDGEN="$CACHE/cargo/bin/bindgen"
export LIBCLANG_PATH=/usr/lib/llvm-19/lib
mkdir -p "$CACHE"
BUSYBOX="$CACHE/busybox-arm64"
RUSTC_VER=$(rustc --version | awk '{print $2}')
RUST_LIB_SRC=/usr/src/rustc-$RUSTC_VER/library
# Make variables for every kernel-tree invocation (kernel and modules alike).
KMAKE_VARS="ARCH=arm64 LLVM=-19 RUST_LIB_SRC=$RUST_LIB_SRC BINDGEN=$BINDGEN"

# kernel_paths <variant>: sets kdir, KSRC and KOUT for a built kernel of that
# variant, or exits naming the missing piece.
kernel_paths() {
	kdir=$(readlink -f "$CACHE/kernel-$1")
	if [ ! -f "$kdir/.done" ]; then
		echo "$(basename "$0"): no $1 kernel: run make kernel (or make kernel-perf)" >&2
		exit 1
	fi
	KSRC="$kdir/src"
	KOUT="$kdir/build"
}

# perf_modules: builds the perf kernel if needed, our modules for it (from a
# copy in build/perf-src, so that the debug build's objects in the work tree
# stay as they are) and the peer suites; sets KSRC, KOUT and perf_src (the
# modules' directory for vm.py --modules-dir). For make bench and profile.
perf_modules() {
	"$here/build-kernel.sh" perf >/dev/null
	kernel_paths perf
	local src="$top/build/perf-src"
	mkdir -p "$src"
	rsync -a --delete --exclude '*.o' --exclude '*.ko' --exclude '.*.cmd' \
		"$top/Kbuild" "$top/rust" "$top/include" "$src/"
	make -s -C "$KOUT" M="$src" $KMAKE_VARS modules >&2
	"$here/build-peer.sh" perf
	perf_src="$src/rust"
}
