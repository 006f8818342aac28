//! `rig check`: scenario files, the rig config and the DBC validated without running anything.

use std::{path::PathBuf, process::ExitCode};

use bench_config::{bench_folder, RigConfig};
use rig_verify::{dbc::OilTempEncoder, scenario::Scenario};

pub fn cli(paths: Vec<PathBuf>, rig: PathBuf) -> ExitCode {
    let mut bad = 0;
    let encoder = match OilTempEncoder::load(&bench_folder::default_dbc()) {
        Ok(e) => Some(e),
        Err(e) => {
            bad += 1;
            eprintln!("bad  {e}");
            None
        }
    };
    match RigConfig::load(&rig) {
        Ok(c) => println!("ok   {} (rig {:?})", rig.display(), c.name),
        Err(e) => {
            bad += 1;
            eprintln!("bad  {e}");
        }
    }
    let paths = if paths.is_empty() {
        vec![bench_folder::default_scenarios()]
    } else {
        paths
    };
    match Scenario::collect(&paths) {
        Ok(files) => {
            for f in files {
                match Scenario::load(&f, encoder.as_ref()) {
                    Ok(s) => println!("ok   {} ({} steps)", f.display(), s.steps.len()),
                    Err(e) => {
                        bad += 1;
                        eprintln!("bad  {e}");
                    }
                }
            }
        }
        Err(e) => {
            bad += 1;
            eprintln!("bad  {e}");
        }
    }
    ExitCode::from(if bad == 0 { 0 } else { 2 })
}
