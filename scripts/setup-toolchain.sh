#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Install everything the project needs on a Debian 12 (bookworm) x86_64 host:
# the LLVM 19 toolchain, the aarch64 cross compiler, QEMU 10 from
# bookworm-backports, bindgen, and, from trixie-backports *without* adding
# trixie to the system's apt sources, the linux-source-7.3 tarball and the
# rust-src package matching the machine's rustc.
#
# Idempotent: a second run checks and returns in a few seconds.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
. "$here/common.sh"

start=$(date +%s)
step() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (apt-get install)"
command -v rustc >/dev/null || die "rustc not found: install the Rust toolchain (rustup) first"

RUSTC_VER=$(rustc --version | awk '{print $2}')

# --- apt: bookworm-backports and arm64 ---------------------------------------
need_update=0
if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
	step "adding bookworm-backports to the apt sources"
	cat > /etc/apt/sources.list.d/bookworm-backports.sources <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
	need_update=1
fi
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
	step "adding the arm64 architecture (for busybox-static and uuid-dev)"
	dpkg --add-architecture arm64
	need_update=1
fi

PKGS="clang-19 lld-19 llvm-19 libclang-19-dev gcc-aarch64-linux-gnu libc6-dev-arm64-cross
      flex bison bc cpio kmod xz-utils rsync libelf-dev libssl-dev python3 perl
      uuid-dev:arm64"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
qemu_ok=0
if command -v qemu-system-aarch64 >/dev/null; then
	qv=$(qemu-system-aarch64 --version | sed -n 's/.*version \([0-9]*\)\..*/\1/p')
	[ "${qv:-0}" -ge 9 ] && qemu_ok=1
fi
if [ -n "$missing" ] || [ $qemu_ok = 0 ]; then
	if [ $need_update = 1 ] || [ ! -e /var/lib/apt/lists/lock ] || \
	   ! ls /var/lib/apt/lists/*bookworm-backports* >/dev/null 2>&1; then
		step "apt-get update"
		apt-get update -q >/dev/null
	fi
	if [ -n "$missing" ]; then
		step "apt-get install$missing"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing >/dev/null \
			|| die "apt-get install failed for:$missing"
	fi
	if [ $qemu_ok = 0 ]; then
		step "apt-get install -t bookworm-backports qemu-system-arm"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
			-t bookworm-backports qemu-system-arm qemu-efi-aarch64 ipxe-qemu >/dev/null \
			|| die "could not install qemu-system-arm from bookworm-backports"
	fi
fi

# --- trixie-backports: linux-source-7.3 and rust-src, private apt state -------
TB="$CACHE/trixie-backports"
mkdir -p "$TB/lists/partial" "$TB/cache/archives/partial" "$TB/debs"
tb_apt() {
	apt-get -q -o Dir::Etc::SourceList="$TB/sources.list" -o Dir::Etc::SourceParts=/dev/null \
		-o Dir::State::Lists="$TB/lists" -o Dir::Cache="$TB/cache" \
		-o APT::Sandbox::User=root -o APT::Architecture=amd64 -o APT::Architectures=amd64 "$@"
}
tb_ready() {
	[ -f "$TB/sources.list" ] && ls "$TB"/lists/*trixie-backports*Packages* >/dev/null 2>&1
}
tb_init() {
	if ! tb_ready; then
		step "private apt list for trixie-backports (system sources untouched)"
		echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie-backports main" > "$TB/sources.list"
		tb_apt update >/dev/null || die "apt-get update of the private trixie-backports list failed"
	fi
}

if [ ! -f "$KSRC_TARBALL" ]; then
	tb_init
	step "downloading linux-source-$KVER_MAJOR from trixie-backports"
	(cd "$TB/debs" && tb_apt download "linux-source-$KVER_MAJOR" >/dev/null) \
		|| die "no linux-source-$KVER_MAJOR in trixie-backports"
	deb=$(ls -t "$TB"/debs/linux-source-"$KVER_MAJOR"_*.deb | head -n1)
	rm -rf "$TB/x-linux"; mkdir -p "$TB/x-linux"
	dpkg-deb -x "$deb" "$TB/x-linux"
	mv "$TB/x-linux/usr/src/linux-source-$KVER_MAJOR.tar.xz" "$KSRC_TARBALL"
	rm -rf "$TB/x-linux"
fi

RUST_LIB_SRC_DIR="/usr/src/rustc-$RUSTC_VER/library"
if [ ! -d "$RUST_LIB_SRC_DIR" ]; then
	tb_init
	vers=$(apt-cache -o Dir::Etc::SourceList="$TB/sources.list" -o Dir::Etc::SourceParts=/dev/null \
		-o Dir::State::Lists="$TB/lists" -o Dir::Cache="$TB/cache" madison rust-src 2>/dev/null \
		| awk -F'|' '{gsub(/ /,"",$2); print $2}')
	match=$(printf '%s\n' $vers | grep "^$RUSTC_VER+" | head -n1 || true)
	[ -n "$match" ] || die "no rust-src matching rustc $RUSTC_VER in trixie-backports (have: $(echo $vers))"
	step "downloading rust-src=$match from trixie-backports"
	(cd "$TB/debs" && tb_apt download "rust-src=$match" >/dev/null) || die "download of rust-src=$match failed"
	deb=$(ls -t "$TB"/debs/rust-src_*.deb | head -n1)
	rm -rf "$TB/x-rust"; mkdir -p "$TB/x-rust"
	dpkg-deb -x "$deb" "$TB/x-rust"
	[ -d "$TB/x-rust/usr/src/rustc-$RUSTC_VER/library" ] || die "rust-src $match has no library for $RUSTC_VER"
	mkdir -p "/usr/src/rustc-$RUSTC_VER"
	cp -a "$TB/x-rust/usr/src/rustc-$RUSTC_VER/library" "/usr/src/rustc-$RUSTC_VER/"
	rm -rf "$TB/x-rust"
fi

# --- busybox for the guest: downloaded, not installed (it would replace the
# host's /bin/busybox with an arm64 binary) --------------------------------
BUSYBOX="$CACHE/busybox-arm64"
if [ ! -x "$BUSYBOX" ]; then
	step "downloading busybox-static:arm64"
	rm -rf "$CACHE/x-bb"; mkdir -p "$CACHE/x-bb"
	(cd "$CACHE/x-bb" && apt-get -q -o APT::Sandbox::User=root download busybox-static:arm64 >/dev/null) \
		|| die "apt-get download busybox-static:arm64 failed"
	dpkg-deb -x "$CACHE"/x-bb/busybox-static_*.deb "$CACHE/x-bb/root"
	cp "$CACHE/x-bb/root/bin/busybox" "$BUSYBOX"
	rm -rf "$CACHE/x-bb"
fi

# --- bindgen ------------------------------------------------------------------
if ! "$BINDGEN" --version 2>/dev/null | grep -q "bindgen $BINDGEN_VER"; then
	step "cargo install bindgen-cli $BINDGEN_VER"
	LIBCLANG_PATH=/usr/lib/llvm-19/lib cargo install --quiet --root "$CACHE/cargo" \
		bindgen-cli --version "$BINDGEN_VER" --locked || die "cargo install bindgen-cli failed"
fi

# --- Rust components the host tests need ---------------------------------------
command -v rustfmt >/dev/null || die "rustfmt missing: rustup component add rustfmt"

step "toolchain ready in $(( $(date +%s) - start )) s (rustc $RUSTC_VER, $(clang-19 --version | head -n1), $(qemu-system-aarch64 --version | head -n1))"
