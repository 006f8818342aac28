//! Provenance of the firmware in the report: the board ELF carries its git commit, dirty flag
//! and a GNU build id (firmware/build.rs), the rig reads them from the ELF, and the run report
//! says whether the board's flash holds that image.

mod common;

use std::process::Command;

use rig_instruments::elf;

#[test]
fn the_board_elf_names_its_commit_and_build_id() {
    for rel in [common::DIRECT_SMPS_ELF, common::LDO_ELF] {
        let Some(path) = common::shipped(rel) else {
            return;
        };
        let bytes = std::fs::read(&path).expect("ELF");
        let p = elf::provenance(&bytes);
        let commit = p.git_commit.clone().expect("a git commit in the ELF");
        assert!(
            commit.len() == 40 && commit.chars().all(|c| c.is_ascii_hexdigit()),
            "{commit}"
        );
        // A commit of this repository (the ELF may be older than HEAD on a developer's machine).
        let known = Command::new("git")
            .args(["cat-file", "-e", &format!("{commit}^{{commit}}")])
            .current_dir(common::repo(""))
            .status()
            .expect("git");
        assert!(
            known.success(),
            "{commit} is not a commit of this repository"
        );
        assert!(p.git_dirty.is_some(), "{p:?}");
        let id = p.build_id.clone().expect("a GNU build id");
        assert_eq!(id.len(), 40, "sha1 build id: {id}");
        let (address, record) = p.record.clone().expect("the record's place in flash");
        assert!(
            (0x0800_0000..0x0810_0000).contains(&address),
            "{address:#x}"
        );
        assert!(record.starts_with(format!("gauge-build/1 commit={commit} ").as_bytes()));
    }
}

#[test]
fn the_run_report_carries_the_provenance_and_what_the_board_holds() {
    let Some(path) = common::shipped(common::DIRECT_SMPS_ELF) else {
        return;
    };
    let p = elf::provenance(&std::fs::read(&path).expect("ELF"));
    let (result, _reports) = common::run(
        &common::repo("rig-config/sim.toml"),
        &[common::repo("scenarios/broadcast_basic.toml")],
    );
    let rig = result.report.rig.clone().expect("rig info");
    let config_hash = rig_instruments::elf::sha256_hex(&common::repo("rig-config/sim.toml"))
        .expect("sim.toml hashed");
    assert_eq!(rig.config_sha256.as_deref(), Some(config_hash.as_str()));
    assert!(rig.host.is_some_and(|h| !h.is_empty()));
    let fw = result.report.firmware.expect("firmware identity");
    assert_eq!(fw.git_commit, p.git_commit);
    assert_eq!(fw.git_dirty, p.git_dirty);
    assert_eq!(fw.build_id, p.build_id);
    let on_board = fw.on_board.expect("what the board holds");
    assert!(
        on_board.contains("gauge-logic") && on_board.contains("matches the ELF"),
        "{on_board}"
    );
}
