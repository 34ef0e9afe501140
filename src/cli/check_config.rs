//! `failoverd check-config`: every error and warning of a configuration, with the
//! verdict on stdout.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::ConfigSource;
use crate::service;

pub(crate) fn config_source(path: Option<&PathBuf>) -> anyhow::Result<ConfigSource> {
    match path {
        // The error names the file and why ("cannot read PATH: No such file …").
        Some(path) => Ok(ConfigSource::from_file(path)?),
        None => Ok(ConfigSource::embedded()),
    }
}

pub(crate) fn check_config(
    path: &PathBuf,
    deny_warnings: bool,
    reader: service::Reader,
    options: &service::StartOptions,
) -> anyhow::Result<ExitCode> {
    let source = config_source(Some(path))?.read_by(reader);
    let loaded = service::load(source).and_then(|loaded| {
        let mut host = options.check(&loaded.config);
        host.extend(service::check_host(&loaded.config));
        if host.has_errors() {
            let mut diagnostics = loaded.warnings;
            diagnostics.extend(host);
            return Err(diagnostics);
        }
        Ok(loaded)
    });
    // Errors and warnings go to stderr, the verdict to stdout.
    match loaded {
        Ok(loaded) => {
            eprint!("{}", loaded.warnings);
            let warnings = loaded.warnings.warnings.len();
            let failed = deny_warnings && warnings > 0;
            println!(
                "{}: {} ({}, {}, {}, {}; {})",
                path.display(),
                if failed {
                    "FAILED (--deny-warnings)"
                } else {
                    "OK"
                },
                count(loaded.zones.zones().len(), "zone"),
                count(loaded.zones.record_count(), "static record"),
                count(loaded.config.records.len(), "dynamic record"),
                count(loaded.config.pools.len(), "pool"),
                count(warnings, "warning"),
            );
            Ok(if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        Err(diagnostics) => {
            eprint!("{diagnostics}");
            println!(
                "{}: {}, {}",
                path.display(),
                count(diagnostics.errors.len(), "error"),
                count(diagnostics.warnings.len(), "warning"),
            );
            Ok(ExitCode::FAILURE)
        }
    }
}

/// "1 error", "2 errors".
pub(crate) fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}
