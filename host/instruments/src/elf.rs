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
