//! An in-process debug probe attached to the simulated board's debug port.

use std::sync::Arc;

use super::{bench::Shared, target::FirmwareImage};
use crate::instruments::{CoreSelect, DebugProbe, ProbeError};

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

    /// Downloads `image` and resets the target, as `probe-rs download` + reset does.
    pub fn flash(&mut self, image: &FirmwareImage) -> Result<(), ProbeError> {
        let core = self
            .attached
            .ok_or(ProbeError::NotAttached { probe: self.name() })?;
        let now = self.shared.now_us();
        let mut b = self.shared.board();
        if !b.powered || !b.target.debug_accessible(core) {
            return Err(ProbeError::NoTarget {
                probe: self.name(),
                core,
            });
        }
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

    fn read_u32(&mut self, address: u32) -> Result<u32, ProbeError> {
        let core = self
            .attached
            .ok_or(ProbeError::NotAttached { probe: self.name() })?;
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
        let core = self
            .attached
            .ok_or(ProbeError::NotAttached { probe: self.name() })?;
        let now = self.shared.now_us();
        let mut b = self.shared.board();
        if !b.powered || !b.target.debug_accessible(core) {
            return Err(ProbeError::NoTarget {
                probe: self.name(),
                core,
            });
        }
        b.target.reset(now);
        Ok(())
    }

    fn detach(&mut self) {
        self.attached = None;
    }

    fn describe(&self) -> String {
        self.name()
    }
}
