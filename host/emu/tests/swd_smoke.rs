use std::{path::Path, sync::Arc, time::Instant};

use probe_rs::{flashing, MemoryInterface, Permissions};
use rig_emu::board::EmulatedBoard;
use rig_sim::{
    logic_board::{LogicFirmware, OptionBytes},
    swd_probe::{SwdCounters, SwdProbe},
    SimulatedBench, SimulatedBenchConfig,
};
use stm32h755::supply::SupplyConfig;

#[test]
fn smoke() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let elf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../firmware/target/thumbv7em-none-eabihf/release/firmware");
    let board = EmulatedBoard::from_elfs(SupplyConfig::DirectSmps, OptionBytes::default(), &[&elf])
        .unwrap();
    let bench = SimulatedBench::start_with_target(
        SimulatedBenchConfig {
            wiring: SupplyConfig::DirectSmps,
            preloaded: LogicFirmware {
                supply: SupplyConfig::DirectSmps,
            },
            option_bytes: OptionBytes::default(),
            relay_channel: 1,
            can_interface: None,
        },
        Box::new(board),
    )
    .unwrap();
    let shared = bench.shared.clone();
    shared.set_power(true);
    let counters = Arc::new(SwdCounters::default());
    let probe = SwdProbe::probe(shared.clone(), counters.clone());
    let t = Instant::now();
    let mut session = match probe.attach("STM32H755ZITx", Permissions::default()) {
        Ok(s) => s,
        Err(e) => panic!("attach: {e:?}"),
    };
    println!(
        "attach {:?}, {:?} transfers",
        t.elapsed(),
        counters.transfers
    );
    {
        let mut core = session.core(0).unwrap();
        let cr3 = core.read_word_32(0x5802_480C).unwrap();
        println!("PWR_CR3 = {cr3:#x}");
    }
    let t = Instant::now();
    let mut options = flashing::DownloadOptions::default();
    options.verify = true;
    let r = flashing::download_file_with_options(
        &mut session,
        &elf,
        flashing::ElfLoader(flashing::ElfOptions::default()),
        options,
    );
    println!(
        "download {:?}: {r:?}, {:?} transfers",
        t.elapsed(),
        counters.transfers
    );
    if r.is_err() {
        println!(
            "board: {:?}",
            shared.board().target.emulation().map(|e| e.state)
        );
    }
    r.unwrap();
}
