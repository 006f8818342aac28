//! Generates the broadcast-signal constants from `scenarios/oil_temp.dbc`, the one
//! description of the frame shared by the firmware and the rig's encoder.

use std::{env, fmt::Write as _, fs, path::PathBuf};

const MESSAGE: &str = "EngineData_6";
const SIGNAL: &str = "EngOil_Te_Actl";

fn main() {
    let manifest =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let dbc_path = manifest.join("../../scenarios/oil_temp.dbc");
    println!("cargo:rerun-if-changed={}", dbc_path.display());
    let text = fs::read_to_string(&dbc_path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dbc_path.display()));
    let dbc = can_dbc::Dbc::try_from(text.as_str())
        .unwrap_or_else(|e| panic!("{} does not parse as DBC: {e:?}", dbc_path.display()));
    let message = dbc
        .messages
        .iter()
        .find(|m| m.name == MESSAGE)
        .unwrap_or_else(|| panic!("{}: no message {MESSAGE}", dbc_path.display()));
    let signal = message
        .signals
        .iter()
        .find(|s| s.name == SIGNAL)
        .unwrap_or_else(|| {
            panic!(
                "{}: message {MESSAGE} has no signal {SIGNAL}",
                dbc_path.display()
            )
        });
    let (id, extended) = match message.id {
        can_dbc::MessageId::Standard(id) => (u32::from(id), false),
        can_dbc::MessageId::Extended(id) => (id, true),
    };
    let milli = |x: f64, what: &str| -> i64 {
        let m = (x * 1000.0).round();
        assert!(
            (x * 1000.0 - m).abs() < 1e-6,
            "{SIGNAL} {what} {x} is not a whole number of milli-units"
        );
        m as i64
    };
    let mut statuses: Vec<i64> = dbc
        .value_descriptions_for_signal(message.id, SIGNAL)
        .map(|v| v.iter().map(|d| d.id).collect())
        .unwrap_or_default();
    statuses.sort_unstable();
    let mut out = String::new();
    writeln!(
        out,
        "/// Generated from scenarios/oil_temp.dbc ({MESSAGE}.{SIGNAL})."
    )
    .unwrap();
    writeln!(
        out,
        "pub const OIL_TEMP_SIGNAL: SignalLayout = SignalLayout {{"
    )
    .unwrap();
    writeln!(out, "    frame_id: {id:#x},").unwrap();
    writeln!(out, "    extended_id: {extended},").unwrap();
    writeln!(out, "    frame_len: {},", message.size).unwrap();
    writeln!(out, "    start_bit: {},", signal.start_bit).unwrap();
    writeln!(out, "    size: {},", signal.size).unwrap();
    writeln!(
        out,
        "    big_endian: {},",
        matches!(signal.byte_order, can_dbc::ByteOrder::BigEndian)
    )
    .unwrap();
    writeln!(
        out,
        "    signed: {},",
        matches!(signal.value_type, can_dbc::ValueType::Signed)
    )
    .unwrap();
    writeln!(out, "    factor_milli: {},", milli(signal.factor, "factor")).unwrap();
    writeln!(out, "    offset_milli: {},", milli(signal.offset, "offset")).unwrap();
    writeln!(out, "    status_raw_values: &{statuses:?},").unwrap();
    writeln!(out, "}};").unwrap();
    let out_path =
        PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("oil_temp_signal.rs");
    fs::write(&out_path, out)
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", out_path.display()));
}
