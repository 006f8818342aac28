//! `host/rig/FAULTS.md` lists every bad input and fault with what the rig says: each row names
//! its test, and each named test exists; every device-fault case is in the table.

mod common;

/// (file, test name) of every `` `file.rs: name` `` reference in the table.
fn references(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for chunk in text.split('`').skip(1).step_by(2) {
        let Some((file, names)) = chunk.split_once(": ") else {
            continue;
        };
        let file = match file {
            "rig-instruments interrupt::tests" => "../instruments/src/interrupt.rs".to_string(),
            f if f.ends_with(".rs") && !f.contains(' ') => format!("tests/{f}"),
            _ => continue,
        };
        out.push((file, names.trim().to_string()));
    }
    out
}

#[test]
fn every_row_names_a_test_that_exists() {
    let table = std::fs::read_to_string(common::repo("host/rig/FAULTS.md")).expect("FAULTS.md");
    let refs = references(&table);
    assert!(refs.len() > 30, "only {} references", refs.len());
    for (file, name) in &refs {
        let path = common::repo("host/rig").join(file);
        let source = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (named in FAULTS.md)", path.display()));
        assert!(
            source.contains(&format!("fn {name}(")) || source.contains(&format!("case::{name}(")),
            "FAULTS.md names {name} in {file}, which has no such test"
        );
    }
}

#[test]
fn every_device_fault_case_is_in_the_table() {
    let table = std::fs::read_to_string(common::repo("host/rig/FAULTS.md")).expect("FAULTS.md");
    let cases = std::fs::read_to_string(common::repo("host/rig/tests/device_faults.rs"))
        .expect("device_faults.rs");
    let names: Vec<&str> = cases
        .split("#[case::")
        .skip(1)
        .filter_map(|c| c.split('(').next())
        .collect();
    assert!(names.len() >= 18, "{names:?}");
    for name in names {
        assert!(
            table.contains(&format!("`device_faults.rs: {name}`")),
            "FAULTS.md has no row for the device-fault case {name}"
        );
    }
}
