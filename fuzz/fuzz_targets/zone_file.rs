//! Zone-file text → store: the chunking loader and the builder never panic.

#![no_main]

use std::path::Path;

use failoverd::zone::{loader, name, store::ZoneBuilder};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let origin = loader::detect_origin(text, Path::new("fuzz.test.zone")).unwrap_or_else(|| "fuzz.test.".into());
    let Some(wire) = name::wire_from_text(&origin) else { return };
    let mut builder = ZoneBuilder::new(&wire);
    let _ = loader::parse_zone(text, Path::new("fuzz.test.zone"), &origin, &mut |record| {
        builder.add(record.owner, record.rtype, record.ttl, record.rdata)
    });
    let _ = builder.finish();
});
