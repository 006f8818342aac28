//! The emulated board's tests (`emulated_board`, `preflight`, `probe_rs_emulated`, the probe-rs
//! half of `probe_config`, and crate rig-emu's) build only with `--features emulator`, which
//! compiles unicorn's C core. Without it they are not left out silently: this records the skip.

mod common;

#[cfg(not(feature = "emulator"))]
#[test]
fn emulated_board_tests() {
    common::skip(
        "built without --features emulator, so the emulated-board tests are not in this build",
        "cargo test -p rig --features emulator && cargo test -p rig-emu (needs cmake and libclang)",
    );
}
