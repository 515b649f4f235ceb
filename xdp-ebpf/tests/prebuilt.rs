//! The checked-in fallback object (`prebuilt/xtcp_xdp.o`, used by `build.rs` where no
//! clang 14 or later is found) must be the program this checkout's source compiles to: same
//! sections, same maps, same instructions and relocations. Compared against the object
//! `build.rs` just compiled; skipped, with a message, where `build.rs` had no clang and used
//! the prebuilt.
//!
//! Debug sections are not compared (they differ between clang releases without changing
//! the program). Instructions are compared byte for byte when the fresh build used the clang
//! major version the prebuilt object was made with (`prebuilt/CLANG_MAJOR`); another version
//! may schedule instructions differently, and then only sections and maps are compared.
//!
//! To refresh the prebuilt files after changing the C sources, see `prebuilt/README.md`.

use std::collections::BTreeMap;

use object::{Object, ObjectSection, ObjectSymbol, RelocationTarget, SectionKind};

const PREBUILT: &[u8] = include_bytes!("../prebuilt/xtcp_xdp.o");
const PREBUILT_LAYOUT: &str = include_str!("../prebuilt/layout.rs");
const FRESH_LAYOUT: &str = include_str!(concat!(env!("OUT_DIR"), "/layout.rs"));
const PREBUILT_CLANG_MAJOR: &str = include_str!("../prebuilt/CLANG_MAJOR");

/// A program section: its instructions and its relocations as (offset, symbol).
type Program = (Vec<u8>, Vec<(u64, String)>);

#[derive(Debug, PartialEq, Eq)]
struct Summary {
    /// Non-debug section names.
    sections: Vec<String>,
    /// Map symbols in `.maps`: name → size of the definition.
    maps: BTreeMap<String, u64>,
    /// Program sections: name → (instructions, relocations as (offset, symbol)).
    programs: BTreeMap<String, Program>,
}

fn summarize(bytes: &[u8]) -> Summary {
    let file = object::File::parse(bytes).expect("parse BPF ELF");
    let mut sections = Vec::new();
    let mut programs = BTreeMap::new();
    let mut maps_index = None;
    for s in file.sections() {
        let name = s.name().expect("section name").to_string();
        if name.starts_with(".debug") || name.starts_with(".rel.debug") || name.is_empty() {
            continue;
        }
        if name == ".maps" {
            maps_index = Some(s.index());
        }
        if s.kind() == SectionKind::Text {
            let relocs = s
                .relocations()
                .map(|(off, r)| {
                    let sym = match r.target() {
                        RelocationTarget::Symbol(i) => file
                            .symbol_by_index(i)
                            .and_then(|s| s.name().map(str::to_string))
                            .unwrap_or_default(),
                        _ => String::new(),
                    };
                    (off, sym)
                })
                .collect();
            programs.insert(name.clone(), (s.data().expect("data").to_vec(), relocs));
        }
        sections.push(name);
    }
    sections.sort();
    let maps = file
        .symbols()
        .filter(|s| s.section_index().is_some() && s.section_index() == maps_index)
        .map(|s| (s.name().unwrap().to_string(), s.size()))
        .collect();
    Summary {
        sections,
        maps,
        programs,
    }
}

#[test]
fn prebuilt_object_matches_a_fresh_build() {
    let source = env!("XTCP_XDP_OBJECT_SOURCE");
    if source == "prebuilt" {
        eprintln!(
            "SKIPPED prebuilt_object_matches_a_fresh_build: no clang >= 14, nothing to compare"
        );
        return;
    }
    let fresh = summarize(xtcp_xdp_ebpf::object());
    let prebuilt = summarize(PREBUILT);
    assert!(
        fresh.programs.contains_key("xdp"),
        "no xdp section: {:?}",
        fresh.sections
    );
    assert_eq!(fresh.sections, prebuilt.sections, "sections differ");
    assert_eq!(fresh.maps, prebuilt.maps, "maps differ");
    assert_eq!(fresh.maps.len(), 8, "{:?}", fresh.maps);
    let fresh_major = source.rsplit(' ').next().unwrap();
    if fresh_major == PREBUILT_CLANG_MAJOR.trim() {
        for (name, (insns, relocs)) in &fresh.programs {
            let (p_insns, p_relocs) = &prebuilt.programs[name];
            assert!(
                insns == p_insns,
                "instructions of {name} differ: refresh prebuilt/"
            );
            assert_eq!(relocs, p_relocs, "relocations of {name} differ");
        }
    } else {
        eprintln!(
            "note: fresh build by {source}, prebuilt by clang {}: instructions not compared",
            PREBUILT_CLANG_MAJOR.trim()
        );
    }
    assert_eq!(
        FRESH_LAYOUT, PREBUILT_LAYOUT,
        "layout probe output differs: refresh prebuilt/"
    );
}
