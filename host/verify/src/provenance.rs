//! The firmware's provenance in the run report: what the ELF's build embedded (git commit,
//! dirty flag, GNU build id; firmware/build.rs) and whether the board's flash, read back
//! through the probe at bring-up, holds that image. The ELF's sha256 alone says which file
//! the rig config names, never what the board runs.

use std::{path::Path, time::Duration};

use bench_config::FirmwareKind;
use rig_instruments::{attach_with_retry, elf, CoreSelect, DebugProbe};

use crate::{power_loss::power_cycle::compare_image, rig::Rig};

/// Fills `rig.firmware`'s provenance from the rig config's ELF and the board.
pub fn fill(rig: &mut Rig) {
    let Some(path) = rig.config.firmware_elf.clone() else {
        rig.firmware.on_board = Some("not read: the rig config names no firmware ELF".into());
        return;
    };
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) => {
            rig.firmware.on_board = Some(format!("not read: {}: {e}", path.display()));
            return;
        }
    };
    let p = elf::provenance(&bytes);
    rig.firmware.git_commit = p.git_commit;
    rig.firmware.git_dirty = p.git_dirty;
    rig.firmware.build_id = p.build_id;
    let timeout = Duration::from_millis(rig.config.probe.attach_timeout_ms);
    let mut said = on_board(rig.probe.as_deref_mut(), &path, &bytes, timeout);
    if rig.config.firmware_kind == FirmwareKind::Logic {
        // Not a verdict on a build: this board runs gauge-logic, the ELF is what bring-up wrote.
        said = format!(
            "simulated board running gauge-logic; its flash (the ELF bring-up wrote there) {said}"
        );
    }
    tracing::info!("firmware on the board: {said}");
    rig.firmware.on_board = Some(said);
}

/// The board's flash against the ELF at `path` (its `bytes`), read through `probe`.
pub fn on_board(
    probe: Option<&mut (dyn DebugProbe + '_)>,
    path: &Path,
    bytes: &[u8],
    attach_timeout: Duration,
) -> String {
    let Some(probe) = probe else {
        return "not read: this rig has no debug probe".into();
    };
    let compared = elf::parse_segments(bytes)
        .map_err(|e| format!("{}: {e}", path.display()))
        .and_then(|segments| {
            attach_with_retry(probe, CoreSelect::Cm7, attach_timeout)
                .or_else(|_| probe.attach(CoreSelect::Cm4))
                .map_err(|e| format!("the probe did not attach: {e}"))?;
            let r = compare_image(probe, &segments);
            probe.detach();
            r
        });
    match compared {
        Ok((n, None)) => format!("matches the ELF ({n} bytes of flash read back)"),
        Ok((_, Some(at))) => format!(
            "differs from the ELF at {at:#010x}: the board does not run {} (flash it with rig flash)",
            path.display()
        ),
        Err(e) => format!("not read: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::test_probe::MemoryProbe;

    /// A board whose flash holds `flash` (address -> byte; 0xFF elsewhere).
    fn board(flash: HashMap<u32, u8>) -> MemoryProbe<impl FnMut(u32) -> u8 + Send> {
        MemoryProbe::new(move |a| *flash.get(&a).unwrap_or(&0xFF))
    }

    /// A minimal 32-bit Arm ELF with one PT_LOAD segment of `data` at `address`.
    fn elf_with(address: u32, data: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 52 + 32];
        f[..4].copy_from_slice(b"\x7fELF");
        f[4] = 1; // 32-bit
        f[5] = 1; // little endian
        f[6] = 1;
        f[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
        f[18..20].copy_from_slice(&40u16.to_le_bytes()); // EM_ARM
        f[20..24].copy_from_slice(&1u32.to_le_bytes());
        f[28..32].copy_from_slice(&52u32.to_le_bytes()); // e_phoff
        f[40..42].copy_from_slice(&52u16.to_le_bytes()); // e_ehsize
        f[42..44].copy_from_slice(&32u16.to_le_bytes()); // e_phentsize
        f[44..46].copy_from_slice(&1u16.to_le_bytes()); // e_phnum
        let ph = 52;
        let offset = f.len() as u32;
        f[ph..ph + 4].copy_from_slice(&1u32.to_le_bytes()); // PT_LOAD
        f[ph + 4..ph + 8].copy_from_slice(&offset.to_le_bytes());
        f[ph + 8..ph + 12].copy_from_slice(&address.to_le_bytes());
        f[ph + 12..ph + 16].copy_from_slice(&address.to_le_bytes());
        f[ph + 16..ph + 20].copy_from_slice(&(data.len() as u32).to_le_bytes());
        f[ph + 20..ph + 24].copy_from_slice(&(data.len() as u32).to_le_bytes());
        f[ph + 24..ph + 28].copy_from_slice(&5u32.to_le_bytes());
        f.extend_from_slice(data);
        f
    }

    #[test]
    fn the_board_matches_the_elf_or_names_the_first_byte_that_differs() {
        let image: Vec<u8> = (0..64u8).collect();
        let elf = elf_with(0x0800_0000, &image);
        let flash: HashMap<u32, u8> = image
            .iter()
            .enumerate()
            .map(|(i, &b)| (0x0800_0000 + i as u32, b))
            .collect();
        let path = Path::new("fw.elf");
        let t = Duration::from_millis(10);
        let mut good = board(flash.clone());
        let said = on_board(Some(&mut good), path, &elf, t);
        assert_eq!(said, "matches the ELF (64 bytes of flash read back)");

        // One corrupted byte.
        let mut corrupted = flash.clone();
        corrupted.insert(0x0800_0021, 0xEE);
        let said = on_board(Some(&mut board(corrupted)), path, &elf, t);
        assert!(
            said.starts_with("differs from the ELF at 0x08000021"),
            "{said}"
        );

        let mut gone = board(flash);
        gone.attaches = false;
        let said = on_board(Some(&mut gone), path, &elf, t);
        assert!(
            said.starts_with("not read: the probe did not attach"),
            "{said}"
        );
        assert_eq!(
            on_board(None, path, &elf, t),
            "not read: this rig has no debug probe"
        );
        let said = on_board(Some(&mut good), path, b"not an elf", t);
        assert!(said.starts_with("not read: fw.elf:"), "{said}");
    }
}
