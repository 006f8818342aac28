//! The emulated debug port driven by unmodified probe-rs through the in-process SWD probe:
//! what the rig's driver does not use but a debugger does (halt, registers, FPB breakpoints).
//! Needs the shipped ELF (firmware/build.sh).

use std::{path::Path, sync::Arc, time::Duration};

use probe_rs::{CoreStatus, HaltReason, MemoryInterface, Permissions};
use rig_emu::board::EmulatedBoard;
use rig_sim::{
    logic_board::{LogicFirmware, OptionBytes},
    swd_probe::{SwdCounters, SwdProbe},
    SimulatedBench, SimulatedBenchConfig,
};
use stm32h755::supply::SupplyConfig;

#[test]
fn probe_rs_halts_reads_registers_and_stops_at_an_fpb_breakpoint() {
    let elf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../firmware/target/thumbv7em-none-eabihf/release/firmware");
    assert!(
        elf.is_file(),
        "{} is not built: run firmware/build.sh",
        elf.display()
    );
    let board = EmulatedBoard::from_elfs(SupplyConfig::DirectSmps, OptionBytes::default(), &[&elf])
        .expect("board");
    let bench = SimulatedBench::start_with_target(
        SimulatedBenchConfig {
            wiring: SupplyConfig::DirectSmps,
            preloaded: LogicFirmware {
                supply: SupplyConfig::DirectSmps,
            },
            option_bytes: OptionBytes::default(),
            relay_channel: 1,
            supply_rise_ms: 0,
            probe_supply: Default::default(),
            recovery_line: None,
            can_interface: None,
            faults: Default::default(),
        },
        Box::new(board),
    )
    .expect("bench");
    bench.shared.set_power(true);
    std::thread::sleep(Duration::from_millis(50));
    let probe = SwdProbe::probe(bench.shared.clone(), Arc::new(SwdCounters::default()));
    let mut session = probe
        .attach("STM32H755ZITx", Permissions::default())
        .expect("attach");
    let mut core = session.core(0).expect("core 0");
    assert_eq!(
        core.read_word_32(0x5802_480C).expect("PWR_CR3") & 0x3F,
        0x04
    );
    // Halted where the firmware idles; its PC is in the flash image.
    core.halt(Duration::from_millis(200)).expect("halt");
    let pc: u32 = core.read_core_reg(core.program_counter()).expect("PC");
    assert!((0x0800_0000..0x0810_0000).contains(&pc), "{pc:#010x}");
    let sp: u32 = core.read_core_reg(core.stack_pointer()).expect("SP");
    // The stack: DTCM or AXI SRAM.
    assert!((0x2000_0000..0x2408_0000).contains(&sp), "{sp:#010x}");
    // A hardware breakpoint on the idle loop: the core stops there again, before it runs it.
    core.set_hw_breakpoint(u64::from(pc)).expect("breakpoint");
    core.run().expect("run");
    core.wait_for_core_halted(Duration::from_secs(2))
        .expect("halted at the breakpoint");
    assert!(matches!(
        core.status().expect("status"),
        CoreStatus::Halted(HaltReason::Breakpoint(_))
    ));
    let at: u32 = core.read_core_reg(core.program_counter()).expect("PC");
    assert_eq!(at, pc);
    core.clear_hw_breakpoint(u64::from(pc)).expect("clear");
    core.run().expect("run");
    std::thread::sleep(Duration::from_millis(50));
    // Running again (asleep in its idle WFE most of the time), not halted.
    let status = core.status().expect("status");
    assert!(
        matches!(status, CoreStatus::Running | CoreStatus::Sleeping),
        "{status:?}"
    );
}
