//! Every shipped configuration and zone file loads.

use std::path::{Path, PathBuf};

use failoverd::testing::config::ConfigSource;
use failoverd::testing::service;

fn files_in(dir: &Path, extension: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == extension))
        .collect();
    files.sort();
    files
}

#[test]
fn every_config_file_loads_with_its_zones() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut checked = 0;
    for dir in ["config", "tests/data/configs", "examples"] {
        let dir = root.join(dir);
        if !dir.exists() {
            continue;
        }
        for file in files_in(&dir, "toml") {
            let source = ConfigSource::from_file(&file).expect("readable");
            if let Err(diagnostics) = service::load(source) {
                panic!("{} is invalid:\n{diagnostics}", file.display());
            }
            checked += 1;
        }
    }
    assert!(checked >= 2, "found only {checked} config files");
}

#[test]
fn every_zone_file_parses() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    for dir in ["zones", "tests/data/zones"] {
        let dir = root.join(dir);
        let files = files_in(&dir, "zone");
        assert!(!files.is_empty(), "no zones in {}", dir.display());
        for file in files {
            let text = format!(
                "version = 1\n[zones]\ndirectory = {:?}\nfiles = [{:?}]\n",
                dir.display().to_string(),
                file.file_name().unwrap().to_string_lossy()
            );
            if let Err(diagnostics) = service::load(ConfigSource::from_text(text, &dir)) {
                panic!("{} does not load:\n{diagnostics}", file.display());
            }
        }
    }
}

#[test]
fn the_embedded_default_loads() {
    let loaded = service::load(ConfigSource::embedded()).expect("embedded default is valid");
    assert!(loaded.zones.record_count() > 0);
    assert!(!loaded.config.records.is_empty());
}
