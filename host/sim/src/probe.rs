//! An in-process debug probe attached to the simulated board's debug port.

use std::sync::Arc;

use std::sync::MutexGuard;

use super::{
    shared::{BoardSlot, NrstDriver, Shared},
    target::FirmwareImage,
};
use crate::faults::FaultDevice;
use bench_config::FaultKind;
use rig_instruments::{CoreSelect, DebugProbe, ProbeError};

/// probe-rs's USB transfer timeout (its ST-LINK driver's), met by a probe that stopped answering.
const SILENT_PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

pub struct SimulatedProbe {
    shared: Arc<Shared>,
    attached: Option<CoreSelect>,
}

impl SimulatedProbe {
    pub fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            attached: None,
        }
    }

    fn name(&self) -> String {
        "simulated ST-LINK".into()
    }

    /// A probe powered with the board is gone while the board is off and until it has
    /// enumerated again.
    fn present(&self) -> Result<(), ProbeError> {
        match self
            .shared
            .faults
            .active(FaultDevice::Probe)
            .map(|f| f.kind)
        {
            Some(FaultKind::Vanish) => {
                return Err(ProbeError::Gone {
                    probe: self.name(),
                    reason: "left USB (simulated fault: unplugged) and is not back".into(),
                })
            }
            Some(_) => {
                // A USB transfer to a probe that stopped answering ends at its timeout.
                std::thread::sleep(SILENT_PROBE_TIMEOUT);
                return Err(ProbeError::Other {
                    probe: self.name(),
                    reason: format!("USB transfer timed out after {SILENT_PROBE_TIMEOUT:?} (simulated fault: the probe stopped answering)"),
                });
            }
            None => {}
        }
        if self.shared.probe_present() {
            Ok(())
        } else {
            Err(ProbeError::Gone {
                probe: self.name(),
                reason: "not on USB: it is powered with the board (power.topology = \"stlink-usb\"), which is off or has not been on long enough for it to enumerate".into(),
            })
        }
    }

    /// The board, when the probe is attached and the core still answers.
    fn reachable_board(&self) -> Result<(CoreSelect, MutexGuard<'_, BoardSlot>), ProbeError> {
        let core = self
            .attached
            .ok_or(ProbeError::NotAttached { probe: self.name() })?;
        self.present()?;
        let b = self.shared.board();
        if !b.powered || !b.target.debug_accessible(core) {
            return Err(ProbeError::NoTarget {
                probe: self.name(),
                core,
            });
        }
        Ok((core, b))
    }

    /// Downloads `image` and resets the target, as `probe-rs download` + reset does.
    pub fn flash(&mut self, image: &FirmwareImage) -> Result<(), ProbeError> {
        let now = self.shared.now_us();
        let (_, mut b) = self.reachable_board()?;
        b.target
            .load_firmware(image)
            .map_err(|reason| ProbeError::Other {
                probe: self.name(),
                reason,
            })?;
        b.target.reset(now);
        Ok(())
    }
}

impl DebugProbe for SimulatedProbe {
    fn attach(&mut self, core: CoreSelect) -> Result<(), ProbeError> {
        if let Err(e) = self.present() {
            self.attached = None;
            return Err(e);
        }
        let b = self.shared.board();
        if b.powered && b.target.debug_accessible(core) {
            drop(b);
            self.attached = Some(core);
            Ok(())
        } else {
            drop(b);
            self.attached = None;
            Err(ProbeError::NoTarget {
                probe: self.name(),
                core,
            })
        }
    }

    fn attach_under_reset(&mut self, core: CoreSelect) -> Result<(), ProbeError> {
        self.present()?;
        self.shared.drive_nrst(NrstDriver::Probe, true);
        let r = self.attach(core);
        // Attached: the probe lets go of NRST and keeps the core halted; here the core simply stays in reset.
        r
    }

    fn hold_reset(&mut self, asserted: bool) -> Result<(), ProbeError> {
        self.present()?;
        self.shared.drive_nrst(NrstDriver::Probe, asserted);
        Ok(())
    }

    fn read_memory(&mut self, address: u32, buf: &mut [u8]) -> Result<(), ProbeError> {
        let core = self
            .attached
            .ok_or(ProbeError::NotAttached { probe: self.name() })?;
        self.present()?;
        let b = self.shared.board();
        if !b.powered {
            return Err(ProbeError::NoTarget {
                probe: self.name(),
                core,
            });
        }
        b.target
            .debug_read(core, address, buf)
            .map_err(|e| ProbeError::Read {
                probe: self.name(),
                address,
                reason: e.to_string(),
            })
    }

    fn mass_erase(&mut self) -> Result<(), ProbeError> {
        let (_, mut b) = self.reachable_board()?;
        b.target.mass_erase();
        Ok(())
    }

    fn flash_elf(&mut self, elf: &std::path::Path) -> Result<(), ProbeError> {
        let core = self
            .attached
            .ok_or(ProbeError::NotAttached { probe: self.name() })?;
        let segments = rig_instruments::elf::load_segments(elf).map_err(|e| ProbeError::Other {
            probe: self.name(),
            reason: e.to_string(),
        })?;
        let now = self.shared.now_us();
        let mut b = self.shared.board();
        if !b.powered || !b.target.debug_accessible(core) {
            return Err(ProbeError::NoTarget {
                probe: self.name(),
                core,
            });
        }
        b.target
            .load_program(&segments)
            .map_err(|reason| ProbeError::Other {
                probe: self.name(),
                reason,
            })?;
        // Verify, as a real download does.
        for seg in &segments {
            let mut back = vec![0u8; seg.data.len()];
            b.target
                .debug_read(core, seg.address, &mut back)
                .map_err(|e| ProbeError::Read {
                    probe: self.name(),
                    address: seg.address,
                    reason: e.to_string(),
                })?;
            if back != seg.data {
                return Err(ProbeError::Other {
                    probe: self.name(),
                    reason: format!("verify failed in the segment at {:#010x}", seg.address),
                });
            }
        }
        b.target.reset(now);
        Ok(())
    }

    fn read_u32(&mut self, address: u32) -> Result<u32, ProbeError> {
        let core = self
            .attached
            .ok_or(ProbeError::NotAttached { probe: self.name() })?;
        self.present()?;
        let b = self.shared.board();
        if !b.powered {
            return Err(ProbeError::NoTarget {
                probe: self.name(),
                core,
            });
        }
        b.target
            .debug_read_u32(core, address)
            .map_err(|e| ProbeError::Read {
                probe: self.name(),
                address,
                reason: e.to_string(),
            })
    }

    fn reset(&mut self) -> Result<(), ProbeError> {
        let now = self.shared.now_us();
        let (_, mut b) = self.reachable_board()?;
        b.target.reset(now);
        Ok(())
    }

    fn detach(&mut self) {
        self.attached = None;
    }

    fn describe(&self) -> String {
        self.name()
    }

    fn write_u32(&mut self, address: u32, value: u32) -> Result<(), ProbeError> {
        let now = self.shared.now_us();
        let (core, mut b) = self.reachable_board()?;
        b.target
            .debug_write_u32(core, address, value, now)
            .map_err(|e| ProbeError::Other {
                probe: "simulated ST-LINK".into(),
                reason: format!("memory write at {address:#010x}: {e}"),
            })
    }

    fn target_voltage(&mut self) -> Result<Option<f32>, ProbeError> {
        self.present()?;
        // A probe up, measuring the board's VDD.
        Ok(Some(if self.shared.board().powered {
            3.3
        } else {
            0.0
        }))
    }
}
