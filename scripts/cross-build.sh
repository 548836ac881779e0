#!/usr/bin/env bash
# Builds sortie-agent for an ARM board with Debian's Rust (no Docker, no rustup target):
#
#   scripts/cross-build.sh [aarch64|armv7] [--profile P] [--features F] [-- more cargo args]
#
#   aarch64     aarch64-unknown-linux-gnu: Raspberry Pi OS 64-bit, most boards (default)
#   armv7       armv7-unknown-linux-gnueabihf: Raspberry Pi OS 32-bit (Pi 2 and later)
#   --profile   release (default), or release-device for the smallest, stripped agent
#   --features  the agent's hardware backends, e.g. rpi (Raspberry Pi) or linux (any board)
#
# Run scripts/cross-setup.sh (same target) once first. Builds into target/cross (or
# $SORTIE_CROSS_TARGET_DIR) so Debian's rustc and rustup's never share a cache, with --locked
# so Cargo.lock is never rewritten. Prints the binary's path and size. See docs/deploy.md.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '2,14s/^# \{0,1\}//p' "$0"; }

arch=aarch64
profile=release
features=()
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    aarch64 | arm64) arch=aarch64 ;;
    armv7 | armhf) arch=armv7 ;;
    --profile) profile="${2:?--profile needs a name}"; shift ;;
    --profile=*) profile="${1#--profile=}" ;;
    --features) features=(--features "${2:?--features needs a list}"); shift ;;
    --features=*) features=(--features "${1#--features=}") ;;
    --) shift; extra=("$@"); break ;;
    -h | --help) usage; exit 0 ;;
    *) echo "cross-build: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
  esac
  shift
done

case "$arch" in
  aarch64) triple=aarch64-unknown-linux-gnu linker=aarch64-linux-gnu-gcc ;;
  armv7) triple=armv7-unknown-linux-gnueabihf linker=arm-linux-gnueabihf-gcc ;;
esac

rustc=/usr/bin/rustc
cargo=/usr/bin/cargo
missing() {
  echo "cross-build: $1 is missing: run scripts/cross-setup.sh $arch" >&2
  exit 1
}
[ -x "$rustc" ] || missing "Debian's rustc ($rustc)"
[ -x "$cargo" ] || missing "Debian's cargo ($cargo)"
command -v "$linker" >/dev/null || missing "the linker $linker"
[ -d "$("$rustc" --print sysroot)/lib/rustlib/$triple/lib" ] ||
  missing "the standard library for $triple"

target_dir="${SORTIE_CROSS_TARGET_DIR:-$PWD/target/cross}"
echo "cross-build: sortie-agent for $triple, profile $profile${features[*]:+, ${features[*]}}, with $("$rustc" --version)"

# RUSTC/CARGO: Debian's toolchain even where rustup's proxies come first on PATH (rustup's
# RUSTUP_TOOLCHAIN would otherwise leak in through a parent cargo). The linker and qemu runner
# come from .cargo/config.toml; the environment sets the linker too, so a config elsewhere
# cannot pick another.
linker_var="CARGO_TARGET_$(echo "$triple" | tr 'a-z-' 'A-Z_')_LINKER"
env -u RUSTUP_TOOLCHAIN -u RUSTC_WRAPPER \
  RUSTC="$rustc" CARGO="$cargo" CARGO_TARGET_DIR="$target_dir" "$linker_var=$linker" \
  "$cargo" build --locked -p sortie-agent --target "$triple" --profile "$profile" \
  "${features[@]}" "${extra[@]}"

# Cargo names the output directory of the `dev` profile `debug`.
out_profile="$profile"
[ "$profile" = dev ] && out_profile=debug
bin="$target_dir/$triple/$out_profile/sortie-agent"
[ -f "$bin" ] || { echo "cross-build: no binary at $bin" >&2; exit 1; }
bytes=$(stat -c %s "$bin")
echo "cross-build: $bin"
echo "cross-build: $bytes bytes ($(awk -v b="$bytes" 'BEGIN { printf "%.2f", b / 1048576 }') MiB)"
