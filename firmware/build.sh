#!/usr/bin/env bash
# Builds the board ELF (NUCLEO-H755ZI-Q, Cortex-M7, thumbv7em-none-eabihf).
#
#   firmware/build.sh [--ldo] [--out DIR]
#
#   --ldo      build the deliberately wrong LDO-supply variant (feature supply-ldo) into
#              firmware/target/ldo/ instead of firmware/target/
#   --out DIR  also copy the ELF to DIR (as firmware.elf, or firmware-ldo.elf with --ldo)
#
# Toolchain, in this order:
#   (a) a Rust toolchain with the thumbv7em-none-eabihf target installed (rustup target add
#       thumbv7em-none-eabihf): a plain cargo build;
#   (b) Debian's rustc-web/cargo-web/rust-web-src/lld-22: core is built from source
#       (-Z build-std=core with RUSTC_BOOTSTRAP=1) and linked with ld.lld-22;
#   (c) neither: prints what to install and exits 1.
set -euo pipefail

TARGET=thumbv7em-none-eabihf
FW_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

ldo=0
out_dir=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --ldo) ldo=1; shift ;;
        --out)
            [[ $# -ge 2 ]] || { echo "build.sh: --out needs a directory" >&2; exit 2; }
            out_dir="$2"; shift 2 ;;
        -h|--help) sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "build.sh: unknown argument '$1' (usage: build.sh [--ldo] [--out DIR])" >&2; exit 2 ;;
    esac
done

# --out is relative to the caller's directory (the build itself runs in firmware/).
if [[ -n $out_dir ]]; then
    mkdir -p "$out_dir"
    out_dir="$(cd "$out_dir" && pwd)"
fi

cargo_args=(build --release --target "$TARGET" --manifest-path "$FW_DIR/Cargo.toml")
if [[ $ldo -eq 1 ]]; then
    cargo_args+=(--features supply-ldo)
    export CARGO_TARGET_DIR="$FW_DIR/target/ldo"
else
    export CARGO_TARGET_DIR="$FW_DIR/target"
fi

# (a) Is the target's core library installed for the rustc on PATH?
has_target() {
    command -v rustc >/dev/null 2>&1 || return 1
    if command -v rustup >/dev/null 2>&1 && rustup target list --installed 2>/dev/null | grep -qx "$TARGET"; then
        return 0
    fi
    local sysroot
    sysroot="$(rustc --print sysroot 2>/dev/null)" || return 1
    [[ -d "$sysroot/lib/rustlib/$TARGET" ]]
}

DEB_CARGO=${DEB_CARGO:-/usr/bin/cargo}
DEB_RUSTC=${DEB_RUSTC:-/usr/bin/rustc}
DEB_LLD=${DEB_LLD:-/usr/bin/ld.lld-22}

# (b) Debian's toolchain: rustc-web + cargo-web + rust-web-src (std sources) + lld-22.
has_debian_toolchain() {
    [[ -x $DEB_CARGO && -x $DEB_RUSTC && -x $DEB_LLD ]] || return 1
    local sysroot
    sysroot="$("$DEB_RUSTC" --print sysroot 2>/dev/null)" || return 1
    [[ -f "$sysroot/lib/rustlib/src/rust/library/core/Cargo.toml" ]]
}

# Cargo reads .cargo/config.toml (-Tlink.x) from the working directory, not the manifest's.
cd "$FW_DIR"
start=$SECONDS
if has_target; then
    echo "build.sh: using $(rustc --version) with the installed $TARGET target"
    cargo "${cargo_args[@]}"
elif has_debian_toolchain; then
    echo "build.sh: $TARGET not installed for $(command -v rustc || echo rustc);" \
        "using Debian's $("$DEB_RUSTC" --version) with -Z build-std=core"
    # rustup's shims come first on PATH, so everything is named by absolute path.
    # Debian ships no rust-lld (the target's default linker): use LLVM's ld.lld directly.
    RUSTC="$DEB_RUSTC" RUSTC_BOOTSTRAP=1 \
        CARGO_TARGET_THUMBV7EM_NONE_EABIHF_LINKER="$DEB_LLD" \
        "$DEB_CARGO" "${cargo_args[@]}" -Z build-std=core
else
    cat >&2 <<EOF
build.sh: no toolchain for $TARGET found. Install one of:
  - rustup:  rustup target add $TARGET
  - Debian:  apt-get install rustc-web cargo-web rust-web-src lld-22
             (optional: binutils-arm-none-eabi for arm-none-eabi-size/objdump)
EOF
    exit 1
fi

elf="$CARGO_TARGET_DIR/$TARGET/release/firmware"
[[ -f $elf ]] || { echo "build.sh: cargo succeeded but $elf is missing" >&2; exit 1; }
# A link without cortex-m-rt's link.x (e.g. RUSTFLAGS set in the environment replaces the
# rustflags of .cargo/config.toml) "succeeds" with an empty image: refuse it.
readelf_bin="$(command -v arm-none-eabi-readelf || command -v readelf || true)"
if [[ -n $readelf_bin ]] && ! "$readelf_bin" -S "$elf" | grep -q '\.vector_table *PROGBITS *08000000'; then
    echo "build.sh: $elf has no .vector_table at 0x08000000 (was -Tlink.x passed?)" >&2
    exit 1
fi
echo "build.sh: built in $((SECONDS - start)) s"
echo "ELF: $elf"
if [[ -n $out_dir ]]; then
    name=firmware.elf
    [[ $ldo -eq 1 ]] && name=firmware-ldo.elf
    cp "$elf" "$out_dir/$name"
    echo "copied to: $out_dir/$name"
fi
if command -v arm-none-eabi-size >/dev/null 2>&1; then
    arm-none-eabi-size "$elf"
fi
