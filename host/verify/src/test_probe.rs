//! A debug probe for unit tests: each byte of memory from a function of its address, an
//! attach that succeeds or not, and the reads counted.

use rig_instruments::{CoreSelect, DebugProbe, ProbeError};

pub(crate) struct MemoryProbe<F> {
    pub(crate) byte_at: F,
    pub(crate) attaches: bool,
    pub(crate) reads: usize,
}

impl<F: FnMut(u32) -> u8 + Send> MemoryProbe<F> {
    pub(crate) fn new(byte_at: F) -> Self {
        Self {
            byte_at,
            attaches: true,
            reads: 0,
        }
    }
}

impl<F: FnMut(u32) -> u8 + Send> DebugProbe for MemoryProbe<F> {
    fn attach(&mut self, core: CoreSelect) -> Result<(), ProbeError> {
        if self.attaches {
            Ok(())
        } else {
            Err(ProbeError::NoTarget {
                probe: self.describe(),
                core,
            })
        }
    }
    fn attach_under_reset(&mut self, core: CoreSelect) -> Result<(), ProbeError> {
        self.attach(core)
    }
    fn hold_reset(&mut self, _: bool) -> Result<(), ProbeError> {
        Ok(())
    }
    fn read_u32(&mut self, address: u32) -> Result<u32, ProbeError> {
        let mut b = [0u8; 4];
        self.read_memory(address, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }
    fn read_memory(&mut self, address: u32, buf: &mut [u8]) -> Result<(), ProbeError> {
        self.reads += 1;
        for (i, b) in buf.iter_mut().enumerate() {
            *b = (self.byte_at)(address + i as u32);
        }
        Ok(())
    }
    fn write_u32(&mut self, _: u32, _: u32) -> Result<(), ProbeError> {
        Ok(())
    }
    fn reset(&mut self) -> Result<(), ProbeError> {
        Ok(())
    }
    fn mass_erase(&mut self) -> Result<(), ProbeError> {
        Ok(())
    }
    fn flash_elf(&mut self, _: &std::path::Path) -> Result<(), ProbeError> {
        Ok(())
    }
    fn detach(&mut self) {}
    fn describe(&self) -> String {
        "test memory probe".into()
    }
}
