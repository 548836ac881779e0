#!/usr/bin/env bash
# Installs what scripts/cross-build.sh needs to build sortie-agent for ARM boards without Docker:
# Debian's Rust (rustc-web, next to rustup's, at /usr/bin), its standard library for the target
# architecture through multiarch, the GNU cross linker and libc, and user-mode qemu to run the
# result here (tests). See docs/deploy.md.
#
#   scripts/cross-setup.sh [aarch64|armv7|all]...     (default: aarch64)
#
# Idempotent: installs only packages that are missing, runs `apt-get update` only if it has to
# install something. Debian/Ubuntu with apt; runs as root, or through sudo if that is available.
set -euo pipefail

usage() { sed -n '2,10s/^# \{0,1\}//p' "$0"; }

targets=()
for arg in "$@"; do
  case "$arg" in
    aarch64 | arm64) targets+=(aarch64) ;;
    armv7 | armhf) targets+=(armv7) ;;
    all) targets+=(aarch64 armv7) ;;
    -h | --help) usage; exit 0 ;;
    *) echo "cross-setup: unknown target '$arg'" >&2; usage >&2; exit 2 ;;
  esac
done
[ ${#targets[@]} -gt 0 ] || targets=(aarch64)

if [ "$(id -u)" -eq 0 ]; then
  as_root() { "$@"; }
elif command -v sudo >/dev/null; then
  as_root() { sudo "$@"; }
else
  as_root() {
    echo "cross-setup: need root for '$*' (run as root, or install sudo)" >&2
    exit 1
  }
fi

# Debian's Rust toolchain and qemu, whatever the target.
packages=(rustc-web cargo-web qemu-user)
foreign_archs=()
for target in "${targets[@]}"; do
  case "$target" in
    aarch64)
      foreign_archs+=(arm64)
      packages+=(libstd-rust-web-dev:arm64 gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
      ;;
    armv7)
      foreign_archs+=(armhf)
      packages+=(libstd-rust-web-dev:armhf gcc-arm-linux-gnueabihf libc6-dev-armhf-cross)
      ;;
  esac
done

# Multiarch: the target's standard library is an arm64/armhf package.
for arch in "${foreign_archs[@]}"; do
  if ! dpkg --print-foreign-architectures | grep -qx "$arch"; then
    echo "cross-setup: adding dpkg architecture $arch"
    as_root dpkg --add-architecture "$arch"
  fi
done

installed() {
  [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = "installed" ]
}
missing=()
for package in "${packages[@]}"; do
  installed "$package" || missing+=("$package")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "cross-setup: everything is installed (${packages[*]})"
else
  echo "cross-setup: installing ${missing[*]}"
  # A stale index of one suite (a mirror mid-sync) need not stop us: install says if a package
  # is really unavailable.
  as_root apt-get update -qq || echo "cross-setup: apt-get update failed; trying with the indexes there are" >&2
  as_root env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

/usr/bin/rustc --version
for target in "${targets[@]}"; do
  case "$target" in
    aarch64) triple=aarch64-unknown-linux-gnu ;;
    armv7) triple=armv7-unknown-linux-gnueabihf ;;
  esac
  sysroot="$(/usr/bin/rustc --print sysroot)"
  if [ -d "$sysroot/lib/rustlib/$triple/lib" ]; then
    echo "cross-setup: standard library for $triple in $sysroot/lib/rustlib/$triple"
  else
    echo "cross-setup: no standard library for $triple under $sysroot/lib/rustlib" >&2
    exit 1
  fi
done
