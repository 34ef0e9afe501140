//! Static zone data: RFC 1035 files from `zones/`, loaded into an indexed store, and
//! the binding of dynamic records (from the config) to names in those zones.

pub(crate) mod loader;
pub(crate) mod name;
pub(crate) mod store;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub(crate) use self::store::{Lookup, NodeId, NodeRef, PackedRdata, RrSetId, Zone, rtype};
use crate::config::{Config, Diagnostic, Diagnostics, KeyPath, Severity};
use crate::model::RecordIndex;

/// All zones served, searched longest origin first.
#[derive(Debug, Default)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct ZoneSet {
    zones: Vec<Arc<Zone>>,
    /// Per zone, its slot in the per-zone query counters
    /// ([`crate::telemetry::metrics::zone_slot`]: stable for a zone name across reloads).
    slots: Vec<u8>,
}

impl ZoneSet {
    /// Wraps zones (any order).
    pub(crate) fn new(mut zones: Vec<Arc<Zone>>) -> Self {
        zones.sort_by_key(|z| std::cmp::Reverse(z.origin().len()));
        let slots = zones
            .iter()
            .map(|z| crate::telemetry::metrics::zone_slot(&z.origin_text()))
            .collect();
        Self { zones, slots }
    }

    /// The per-zone counter slot of zone `index` (see [`crate::telemetry::metrics::zone_slot`]).
    pub(crate) fn stats_slot(&self, index: usize) -> u8 {
        self.slots
            .get(index)
            .copied()
            .unwrap_or(crate::telemetry::metrics::OTHER_ZONES_SLOT)
    }

    /// The zones, longest origin first.
    #[cfg_attr(feature = "testing", visibility::make(pub))]
    pub(crate) fn zones(&self) -> &[Arc<Zone>] {
        &self.zones
    }

    /// Index (into [`ZoneSet::zones`]) of the zone with the longest origin containing
    /// `qname` (lower-case wire), if any.
    pub(crate) fn find_zone(&self, qname: &[u8]) -> Option<usize> {
        self.zones
            .iter()
            .position(|zone| name::is_at_or_below(qname, zone.origin()))
    }

    /// Another set sharing the same zones.
    pub(crate) fn clone_of(other: &Self) -> Self {
        Self {
            zones: other.zones.clone(),
            slots: other.slots.clone(),
        }
    }

    /// The same zones with the one at `index` replaced (order kept).
    pub(crate) fn with_zone(&self, index: usize, zone: Arc<Zone>) -> Self {
        let mut zones = self.zones.clone();
        if let Some(slot) = zones.get_mut(index) {
            *slot = zone;
        }
        Self {
            zones,
            slots: self.slots.clone(),
        }
    }

    /// Total records across zones.
    #[cfg_attr(feature = "testing", visibility::make(pub))]
    pub(crate) fn record_count(&self) -> usize {
        self.zones.iter().map(|z| z.record_count()).sum()
    }
}

/// One zone file to load.
struct ZoneFile {
    path: PathBuf,
    text: String,
}

/// Loads every configured zone file and binds the config's dynamic records into the
/// zones. Returns the zones with warnings, or every error found (with file and line,
/// or config key path).
pub(crate) fn load(config: &Config) -> Result<(ZoneSet, Diagnostics), Diagnostics> {
    let mut diagnostics = Diagnostics::default();
    let files = read_files(config, &mut diagnostics);
    // A zone file that did not load is reported once: what would fall in it is not
    // reported again as outside every zone (a name it would have held, or any name
    // when its origin is unknown: a file or directory that cannot be read).
    let mut failed = Failed {
        unknown: diagnostics.has_errors(),
        origins: Vec::new(),
    };
    let mut zones: Vec<Zone> = Vec::new();
    for file in files {
        let before = diagnostics.errors.len();
        let loaded = load_file(&file, &mut diagnostics);
        if loaded.is_none() && diagnostics.errors.len() > before {
            match loader::detect_origin(&file.text, &file.path)
                .and_then(|origin| name::wire_from_text(&origin))
            {
                Some(origin) => failed.origins.push(origin),
                None => failed.unknown = true,
            }
        }
        if let Some(zone) = loaded {
            if let Some(other) = zones.iter().find(|z| z.origin() == zone.origin()) {
                diagnostics.push(file_error(
                    &file.path,
                    None,
                    format!("zone {} is loaded twice", other.origin_text()),
                ));
            } else {
                zones.push(zone);
            }
        }
    }
    if zones.is_empty() && !diagnostics.has_errors() {
        diagnostics.push(Diagnostic {
            severity: Severity::Error,
            file: None,
            line: None,
            path: Some(KeyPath::root().key("zones")),
            message: format!(
                "no zone files found in {}",
                config.zones.directory.display()
            ),
        });
    }
    bind(config, &mut zones, &failed, &mut diagnostics);
    if !failed.unknown && failed.origins.is_empty() {
        check_transfer_zones(config, &zones, &mut diagnostics);
    }
    let mut located = Diagnostics::default();
    located.extend(diagnostics);
    located.locate(Some(&config.source.display_name()), &config.source.text);
    if located.has_errors() {
        return Err(located);
    }
    Ok((
        ZoneSet::new(zones.into_iter().map(Arc::new).collect()),
        located,
    ))
}

/// Zone files that did not load (their errors already reported).
struct Failed {
    /// One whose origin is unknown (unreadable), or the directory.
    unknown: bool,
    /// The origins of those that were read but did not load.
    origins: Vec<Vec<u8>>,
}

impl Failed {
    /// Whether a name (lower-case wire) could be in a zone that did not load.
    fn could_hold(&self, wire: &[u8]) -> bool {
        self.unknown
            || self
                .origins
                .iter()
                .any(|origin| name::is_at_or_below(wire, origin))
    }
}

/// Every zone a `[[transfer.secondaries]]` entry names must be loaded.
fn check_transfer_zones(config: &Config, zones: &[Zone], diagnostics: &mut Diagnostics) {
    for (i, secondary) in config.transfer.secondaries.iter().enumerate() {
        for (j, zone) in secondary.zones.iter().enumerate() {
            if !zones.iter().any(|z| z.origin_text() == *zone) {
                diagnostics.push(Diagnostic {
                    severity: Severity::Error,
                    file: None,
                    line: None,
                    path: Some(
                        KeyPath::root()
                            .key("transfer")
                            .key("secondaries")
                            .index(i)
                            .key("zones")
                            .index(j),
                    ),
                    message: format!("zone {zone} is not served (no zone file has this origin)"),
                });
            }
        }
    }
}

fn file_error(path: &Path, line: Option<usize>, message: String) -> Diagnostic {
    Diagnostic {
        severity: Severity::Error,
        file: Some(path.to_owned()),
        line,
        path: None,
        message,
    }
}

fn read_files(config: &Config, diagnostics: &mut Diagnostics) -> Vec<ZoneFile> {
    let directory = &config.zones.directory;
    let names: Vec<String> = match &config.zones.files {
        Some(files) => files.clone(),
        None => match std::fs::read_dir(directory) {
            Ok(entries) => {
                let mut names: Vec<String> = entries
                    .filter_map(Result::ok)
                    .filter_map(|e| e.file_name().into_string().ok())
                    .filter(|n| n.ends_with(".zone"))
                    .collect();
                names.sort();
                names
            }
            Err(_) if config.zones.use_embedded => {
                return crate::config::EMBEDDED_ZONES
                    .iter()
                    .map(|(name, text)| ZoneFile {
                        path: PathBuf::from(format!("<embedded zones/{name}>")),
                        text: (*text).to_owned(),
                    })
                    .collect();
            }
            Err(e) => {
                diagnostics.push(Diagnostic {
                    severity: Severity::Error,
                    file: None,
                    line: None,
                    path: Some(KeyPath::root().key("zones").key("directory")),
                    message: format!("cannot read zone directory {}: {e}", directory.display()),
                });
                return Vec::new();
            }
        },
    };
    let mut files = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let path = directory.join(name);
        match std::fs::read_to_string(&path) {
            Ok(text) => files.push(ZoneFile { path, text }),
            Err(e) => {
                let embedded = crate::config::EMBEDDED_ZONES
                    .iter()
                    .find(|(n, _)| n == name)
                    .filter(|_| config.zones.use_embedded);
                if let Some((_, text)) = embedded {
                    files.push(ZoneFile {
                        path: PathBuf::from(format!("<embedded zones/{name}>")),
                        text: (*text).to_owned(),
                    });
                } else {
                    diagnostics.push(Diagnostic {
                        severity: Severity::Error,
                        file: Some(path.clone()),
                        line: None,
                        path: Some(KeyPath::root().key("zones").key("files").index(i)),
                        message: format!("cannot read zone file: {e}"),
                    });
                }
            }
        }
    }
    files
}

fn load_file(file: &ZoneFile, diagnostics: &mut Diagnostics) -> Option<Zone> {
    let Some(origin) = loader::detect_origin(&file.text, &file.path) else {
        diagnostics.push(file_error(
            &file.path,
            None,
            "cannot tell the zone's origin: add $ORIGIN".into(),
        ));
        return None;
    };
    let Some(origin_wire) = name::wire_from_text(&origin) else {
        diagnostics.push(file_error(
            &file.path,
            None,
            format!("invalid origin {origin:?}"),
        ));
        return None;
    };
    let mut builder = store::ZoneBuilder::new(&origin_wire);
    // At most one record a line.
    builder.reserve(file.text.bytes().filter(|&b| b == b'\n').count() + 1);
    let mut sink_error = None;
    let parsed = loader::parse_zone(&file.text, &file.path, &origin, &mut |record| {
        builder
            .add(record.owner, record.rtype, record.ttl, record.rdata)
            .inspect_err(|e| sink_error = Some(e.clone()))
    });
    if let Err(failure) = parsed {
        let message = sink_error.unwrap_or(failure.message);
        diagnostics.push(file_error(&file.path, failure.line, message));
        return None;
    }
    match builder.finish() {
        Ok((zone, issues)) => {
            for issue in issues {
                diagnostics.push(Diagnostic {
                    severity: Severity::Warning,
                    file: Some(file.path.clone()),
                    line: None,
                    path: None,
                    message: issue.message,
                });
            }
            Some(zone)
        }
        Err(issues) => {
            for issue in issues {
                diagnostics.push(Diagnostic {
                    severity: if issue.fatal {
                        Severity::Error
                    } else {
                        Severity::Warning
                    },
                    file: Some(file.path.clone()),
                    line: None,
                    path: None,
                    message: issue.message,
                });
            }
            None
        }
    }
}

/// Binds every dynamic record to the zone that contains its name, and checks that
/// every Route 53 zone is a zone served.
fn bind(config: &Config, zones: &mut [Zone], failed: &Failed, diagnostics: &mut Diagnostics) {
    if let Some(route53) = &config.route53 {
        for (i, hosted) in route53.zones.iter().enumerate() {
            let unloaded =
                name::wire_from_text(&hosted.zone).is_none_or(|wire| failed.could_hold(&wire));
            if !unloaded
                && !zones
                    .iter()
                    .any(|z| z.origin_text().eq_ignore_ascii_case(&hosted.zone))
            {
                let path = KeyPath::root()
                    .key("route53")
                    .key("zones")
                    .index(i)
                    .key("zone");
                diagnostics.error(
                    path,
                    format!(
                        "{} is not a zone served (no zone file has this origin)",
                        hosted.zone
                    ),
                );
            }
        }
    }
    for (i, record) in config.records.iter().enumerate() {
        let path = KeyPath::root()
            .key("records")
            .index(record.position)
            .key("name");
        let Some(wire) = name::wire_from_text(&record.name) else {
            continue;
        };
        let best = zones
            .iter_mut()
            .filter(|z| name::is_at_or_below(&wire, z.origin()))
            .max_by_key(|z| z.origin().len());
        let Some(zone) = best else {
            if failed.could_hold(&wire) {
                continue;
            }
            let origins: Vec<String> = zones.iter().map(|z| z.origin_text()).collect();
            diagnostics.error(
                path,
                format!(
                    "{} is outside every zone (zones: {})",
                    record.name,
                    if origins.is_empty() {
                        "none loaded".to_owned()
                    } else {
                        origins.join(", ")
                    }
                ),
            );
            continue;
        };
        if let Err(e) = zone.bind_dynamic(&wire, record.record_type, RecordIndex(i as u32)) {
            diagnostics.error(path, format!("{} {}: {e}", record.name, record.record_type));
        }
    }
}
