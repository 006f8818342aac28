//! Puts `memory.x` where cortex-m-rt's `link.x` (`-Tlink.x`, see .cargo/config.toml) finds it,
//! links a GNU build id (`.note.gnu.build-id`) and embeds the build's provenance: the git
//! commit and whether the firmware's sources differed from it (`GAUGE_BUILD_INFO`, a fixed
//! 96-byte record in flash that the rig reads from the ELF and, through the probe, from the
//! board itself).

use std::{env, fs, path::PathBuf, process::Command};

/// `git <args>` in the firmware's folder, its output trimmed; `None` without git or a repo.
fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    fs::write(out.join("memory.x"), include_bytes!("memory.x"))
        .expect("cannot write memory.x to OUT_DIR");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rustc-link-arg=--build-id=sha1");

    let commit = git(&["rev-parse", "HEAD"]).unwrap_or_else(|| "unknown".into());
    // The firmware's own sources (this folder, the logic crate in it) against that commit.
    let dirty = match git(&["status", "--porcelain", "--untracked-files=no", "--", "."]) {
        Some(s) if s.is_empty() => "0",
        Some(_) => "1",
        None => "unknown",
    };
    let record = format!("gauge-build/1 commit={commit} dirty={dirty}");
    assert!(record.len() < 96, "build record too long: {record}");
    let mut bytes = [0u8; 96];
    bytes[..record.len()].copy_from_slice(record.as_bytes());
    fs::write(
        out.join("build_info.rs"),
        format!(
            "/// The build's provenance (firmware/build.rs), NUL-padded: read back by the rig.\n\
             #[no_mangle]\n#[used]\npub static GAUGE_BUILD_INFO: [u8; 96] = {bytes:?};\n"
        ),
    )
    .expect("cannot write build_info.rs to OUT_DIR");

    println!("cargo:rerun-if-changed=memory.x");
    println!("cargo:rerun-if-changed=build.rs");
    // A new commit or a changed source gives a new record.
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=logic/src");
    if let Some(git_dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        println!("cargo:rerun-if-changed={git_dir}/HEAD");
        println!("cargo:rerun-if-changed={git_dir}/index");
        if let Some(head_ref) = git(&["symbolic-ref", "-q", "HEAD"]) {
            println!("cargo:rerun-if-changed={git_dir}/{head_ref}");
        }
    }
}
