//! The capabilities the simulated bench offers beyond its instruments (declared in
//! `rig-instruments`): a supply cut at a chosen storage byte, loading the host-built logic,
//! and the emulated board's speed.

use std::{path::Path, sync::Arc};

use rig_instruments::{
    CanBusFault, CanBusFaults, DebugProbe, EmulationMonitor, EmulationStats, LogicImageLoader,
    StoragePowerCut,
};
use stm32h755::supply::SupplyConfig;

use crate::{
    logic_board::LogicFirmware, probe::SimulatedProbe, shared::Shared, target::FirmwareImage,
};

/// A handle on the simulated bench's board, for its capabilities.
pub struct BenchControl {
    shared: Arc<Shared>,
}

impl BenchControl {
    pub fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

impl StoragePowerCut for BenchControl {
    fn storage_bytes_programmed(&self) -> usize {
        self.shared.board().target.storage_bytes_written()
    }

    fn arm_cut_after_bytes(&mut self, bytes: Option<usize>) {
        self.shared.board().target.arm_storage_power_cut(bytes);
    }

    fn board_powered(&self) -> bool {
        self.shared.board().powered
    }

    fn boot_with_cut(&mut self, cut: Option<usize>) {
        self.shared.set_power(false);
        self.shared.board().target.arm_storage_power_cut(cut);
        self.shared.set_power(true);
        // A planned cut switches the board off from inside; reflect it now.
        let mut b = self.shared.board();
        if b.target.power_cut_requested() {
            b.powered = false;
            b.target.power_off();
        }
        b.target.arm_storage_power_cut(None);
    }
}

impl LogicImageLoader for BenchControl {
    fn load_logic(&mut self, supply: SupplyConfig, elf: Option<&Path>) -> Result<(), String> {
        let mut probe = SimulatedProbe::new(self.shared.clone());
        let loaded = probe
            .attach(rig_instruments::CoreSelect::Cm7)
            .and_then(|_| probe.flash(&FirmwareImage::Logic(LogicFirmware { supply })))
            .and_then(|_| elf.map_or(Ok(()), |p| probe.flash_elf(p)))
            .map_err(|e| e.to_string());
        probe.detach();
        loaded
    }
}

impl CanBusFaults for BenchControl {
    fn set_can_bus_fault(&mut self, fault: CanBusFault) -> Result<(), String> {
        self.shared.board().target.set_can_bus_fault(fault)
    }
}

impl EmulationMonitor for BenchControl {
    fn emulation(&self) -> Option<EmulationStats> {
        self.shared.board().target.emulation()
    }
}
