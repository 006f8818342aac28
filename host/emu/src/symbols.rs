//! Function symbols of the firmware ELF, to say in which function an address lies.

use object::{Object, ObjectSymbol, SymbolKind};

/// Function symbols (start, end, demangled name), sorted by start.
#[derive(Clone, Debug, Default)]
pub struct Symbols {
    functions: Vec<(u32, u32, String)>,
}

impl Symbols {
    /// The function symbols of an ELF; an ELF without a symbol table gives none.
    pub fn parse(bytes: &[u8]) -> Self {
        let Ok(file) = object::File::parse(bytes) else {
            return Self::default();
        };
        let mut functions: Vec<(u32, u32, String)> = file
            .symbols()
            .filter(|s| s.kind() == SymbolKind::Text)
            .filter_map(|s| {
                let name = s.name().ok()?;
                if name.is_empty() || name.starts_with('$') {
                    return None;
                }
                // Thumb function symbols carry bit 0.
                let start = u32::try_from(s.address()).ok()? & !1;
                let size = u32::try_from(s.size()).ok()?;
                Some((start, start.saturating_add(size), demangle(name)))
            })
            .collect();
        functions.sort_by_key(|(start, end, _)| (*start, *end));
        Self { functions }
    }

    pub fn len(&self) -> usize {
        self.functions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.functions.is_empty()
    }

    /// The function containing `pc`: the symbol whose range holds it, else the nearest one
    /// below it without a size.
    pub fn function_at(&self, pc: u32) -> Option<&str> {
        let pc = pc & !1;
        let idx = self.functions.partition_point(|(start, _, _)| *start <= pc);
        self.functions[..idx]
            .iter()
            .rev()
            .find(|(start, end, _)| pc < *end || (start == end && pc - start < 0x1000))
            .map(|(_, _, name)| name.as_str())
    }

    /// "0x08001234 in some::function" or just the address.
    pub fn describe(&self, pc: u32) -> String {
        match self.function_at(pc) {
            Some(name) => format!("{pc:#010x} in {name}"),
            None => format!("{pc:#010x}"),
        }
    }
}

fn demangle(name: &str) -> String {
    format!("{:#}", rustc_demangle::demangle(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_by_range() {
        let s = Symbols {
            functions: vec![
                (0x100, 0x120, "a".into()),
                (0x120, 0x200, "b".into()),
                (0x300, 0x300, "sizeless".into()),
            ],
        };
        assert_eq!(s.function_at(0x100), Some("a"));
        assert_eq!(s.function_at(0x11F), Some("a"));
        assert_eq!(s.function_at(0x121), Some("b"));
        assert_eq!(s.function_at(0x250), None);
        assert_eq!(s.function_at(0x310), Some("sizeless"));
        assert_eq!(s.function_at(0x50), None);
        assert_eq!(
            demangle("_RNvCsaZWQJTCiYu2_8firmware18___cortex_m_rt_main"),
            "firmware::__cortex_m_rt_main"
        );
    }
}
