//! The loadable segments of a firmware ELF: what a flash download writes and what a
//! verification must find in the chip.

use std::path::Path;

use object::{Object, ObjectSegment};

/// One contiguous range of bytes at its load (physical) address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    pub address: u32,
    pub data: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum ElfError {
    #[error(
        "{path}: cannot read: {reason}. Build it with firmware/build.sh or give the right path"
    )]
    Read { path: String, reason: String },
    #[error("{path}: not an ELF the rig can use: {reason}")]
    Parse { path: String, reason: String },
}

/// Whether `segments` may be downloaded into the STM32H755's flash: each inside the chip's
/// flash (0x0800_0000..0x0820_0000), none on the sectors the firmware keeps its boot records
/// in (bank 2 sectors 6-7, 0x081C_0000..0x0820_0000): a download erases every sector it
/// writes, so it would erase them. Bank 2's other sectors are legitimate (a Cortex-M4 image
/// at 0x0810_0000).
pub fn check_download(segments: &[Segment]) -> Result<(), String> {
    let flash = stm32h755::flash::FLASH_ADDRESSES;
    let storage = gauge_logic::storage::STORAGE_ADDRESSES;
    for s in segments {
        let start = u64::from(s.address);
        let end = start + s.data.len() as u64;
        if start < u64::from(flash.start) || end > u64::from(flash.end) {
            return Err(format!(
                "segment at {:#010x} ({} bytes) is outside the STM32H755's flash ({:#010x}..{:#010x}): is this the board ELF?",
                s.address,
                s.data.len(),
                flash.start,
                flash.end
            ));
        }
        if start < u64::from(storage.end) && end > u64::from(storage.start) {
            return Err(format!(
                "segment at {:#010x} ({} bytes) lies on the storage sectors {:#010x}..{:#010x} (bank 2 sectors 6-7, the firmware's boot records): downloading it would erase them; link the image elsewhere",
                s.address,
                s.data.len(),
                storage.start,
                storage.end
            ));
        }
    }
    Ok(())
}

/// Loadable segments with file data (p_filesz > 0), at their physical addresses.
pub fn load_segments(path: &Path) -> Result<Vec<Segment>, ElfError> {
    let bytes = std::fs::read(path).map_err(|e| ElfError::Read {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    parse_segments(&bytes).map_err(|reason| ElfError::Parse {
        path: path.display().to_string(),
        reason,
    })
}

pub fn parse_segments(bytes: &[u8]) -> Result<Vec<Segment>, String> {
    let file = object::File::parse(bytes).map_err(|e| e.to_string())?;
    if file.architecture() != object::Architecture::Arm {
        return Err(format!(
            "architecture {:?}, not 32-bit Arm",
            file.architecture()
        ));
    }
    let mut segments = Vec::new();
    if let object::File::Elf32(elf) = &file {
        use object::read::elf::ProgramHeader;
        let endian = elf.endian();
        for ph in elf.elf_program_headers() {
            if ph.p_type(endian) != object::elf::PT_LOAD || ph.p_filesz(endian) == 0 {
                continue;
            }
            let data = ph
                .data(endian, bytes)
                .map_err(|_| "segment data out of the file".to_string())?;
            segments.push(Segment {
                address: ph.p_paddr(endian),
                data: data.to_vec(),
            });
        }
    } else {
        for seg in file.segments() {
            let data = seg.data().map_err(|e| e.to_string())?;
            if !data.is_empty() {
                segments.push(Segment {
                    address: seg.address() as u32,
                    data: data.to_vec(),
                });
            }
        }
    }
    if segments.is_empty() {
        return Err("no loadable segment with data".into());
    }
    Ok(segments)
}

/// What the firmware's build embedded in its ELF (firmware/build.rs): the
/// `GAUGE_BUILD_INFO` record (`gauge-build/1 commit=<sha> dirty=<0|1|unknown>`, NUL-padded)
/// and the GNU build id. Each `None` when the ELF has none (another build).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Provenance {
    pub git_commit: Option<String>,
    pub git_dirty: Option<bool>,
    /// Hex.
    pub build_id: Option<String>,
    /// Where the record sits in flash, and its bytes: the board holds the same bytes there
    /// when it runs this build.
    pub record: Option<(u32, Vec<u8>)>,
}

/// The symbol firmware/build.rs defines.
pub const BUILD_INFO_SYMBOL: &str = "GAUGE_BUILD_INFO";

/// Reads [`Provenance`] from an ELF's bytes; never fails (what is missing stays `None`).
pub fn provenance(bytes: &[u8]) -> Provenance {
    use object::{ObjectSymbol, ObjectSymbolTable};
    let mut p = Provenance::default();
    let Ok(file) = object::File::parse(bytes) else {
        return p;
    };
    p.build_id = file
        .build_id()
        .ok()
        .flatten()
        .map(|id| id.iter().map(|b| format!("{b:02x}")).collect());
    let symbol = file
        .symbol_table()
        .and_then(|t| t.symbols().find(|s| s.name() == Ok(BUILD_INFO_SYMBOL)));
    let (Some(symbol), Ok(segments)) = (symbol, parse_segments(bytes)) else {
        return p;
    };
    let (Ok(address), Ok(size)) = (
        u32::try_from(symbol.address()),
        usize::try_from(symbol.size()),
    ) else {
        return p;
    };
    let record = segments.iter().find_map(|s| {
        let offset = usize::try_from(address.checked_sub(s.address)?).ok()?;
        s.data
            .get(offset..offset.checked_add(size)?)
            .map(<[u8]>::to_vec)
    });
    let Some(record) = record else {
        return p;
    };
    let text = String::from_utf8_lossy(&record);
    let text = text.trim_end_matches('\0');
    if let Some(fields) = text.strip_prefix("gauge-build/1 ") {
        for field in fields.split(' ') {
            match field.split_once('=') {
                Some(("commit", c)) if c != "unknown" => p.git_commit = Some(c.to_string()),
                Some(("dirty", "0")) => p.git_dirty = Some(false),
                Some(("dirty", "1")) => p.git_dirty = Some(true),
                _ => {}
            }
        }
    }
    p.record = Some((address, record));
    p
}

/// SHA-256 of the file, hex.
pub fn sha256_hex(path: &Path) -> Result<String, ElfError> {
    use sha2::Digest;
    let bytes = std::fs::read(path).map_err(|e| ElfError::Read {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    Ok(sha2::Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(address: u32, len: usize) -> Segment {
        Segment {
            address,
            data: vec![0; len],
        }
    }

    #[test]
    fn downloads_stay_in_flash_and_off_the_storage_sectors() {
        assert!(check_download(&[seg(0x0800_0000, 0x9000), seg(0x0810_0000, 0x400)]).is_ok());
        let e = check_download(&[seg(0x081B_FFF0, 0x20)]).unwrap_err();
        assert!(e.contains("storage sectors 0x081c0000..0x08200000"), "{e}");
        let e = check_download(&[seg(0x0820_0000, 4)]).unwrap_err();
        assert!(e.contains("outside the STM32H755's flash"), "{e}");
        let e = check_download(&[seg(0x07FF_FFFC, 8)]).unwrap_err();
        assert!(e.contains("outside"), "{e}");
    }
}
