//! Scenario loading against the number of steps: it must grow linearly (it once grew with the
//! square: 16,000 steps took 15 s). Loads generated scenarios of 1,000 to 100,000 steps (with
//! the DBC check of each broadcast set-point) and prints the time per step at each size.
//! Run: `cargo bench -p rig-verify --bench scenario_load`.

use std::time::Instant;

use rig_verify::{dbc::OilTempEncoder, scenario::Scenario};

fn main() {
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("scenario_load: no temporary folder: {e}");
            std::process::exit(2);
        }
    };
    let encoder = match OilTempEncoder::load(&rig_verify::dbc::default_path()) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("scenario_load: {e}");
            std::process::exit(2);
        }
    };
    let mut per_step_us = Vec::new();
    for steps in [1_000usize, 10_000, 100_000] {
        let mut text = String::from("name = \"generated\"\n");
        for i in 0..steps {
            // Alternate a set-point and a check, as a long sweep does.
            if i % 2 == 0 {
                text += &format!(
                    "\n[[steps]]\naction = \"set_temperature\"\ncelsius = {}\n",
                    i % 150
                );
            } else {
                text += "\n[[steps]]\naction = \"expect_pulse\"\nus = 1500\ntolerance_us = 4\n";
            }
        }
        let path = dir.path().join(format!("s{steps}.toml"));
        if let Err(e) = std::fs::write(&path, &text) {
            eprintln!("scenario_load: {}: {e}", path.display());
            std::process::exit(2);
        }
        let start = Instant::now();
        let loaded = match Scenario::load(&path, Some(&encoder)) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("scenario_load: {e}");
                std::process::exit(1);
            }
        };
        let took = start.elapsed();
        assert_eq!(loaded.steps.len(), steps);
        let us = took.as_secs_f64() * 1e6 / steps as f64;
        per_step_us.push(us);
        println!(
            "scenario_load: {steps:>7} steps ({:>5} KiB) loaded in {:>8.1} ms: {us:.2} us per step",
            text.len() / 1024,
            took.as_secs_f64() * 1e3
        );
    }
    let growth = per_step_us[2] / per_step_us[0];
    println!(
        "scenario_load: time per step at 100,000 steps / at 1,000 steps = {growth:.2} (linear: about 1; the quadratic loader gave about 15 per 16x)"
    );
    if growth > 4.0 {
        eprintln!("scenario_load: loading grows faster than the number of steps");
        std::process::exit(1);
    }
}
