//! `[dnstap]`: where query and response logs go.

use std::path::PathBuf;

use super::validate::Validator;
use crate::config::ConfigSource;
use crate::config::defaults::dnstap as defaults;
use crate::config::diagnostics::KeyPath;
use crate::config::spec::DnstapSpec;

/// Query and response logging to a dnstap consumer: `[dnstap]`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct DnstapConfig {
    /// The consumer's Unix socket (fstrm_capture, dnstap-ldns, a collector).
    pub socket: PathBuf,
    /// `identity` field.
    pub identity: String,
    /// `version` field.
    pub version: String,
    /// Log queries (AUTH_QUERY).
    pub queries: bool,
    /// Log responses (AUTH_RESPONSE).
    pub responses: bool,
    /// Messages buffered for the consumer; beyond this they are dropped and counted.
    pub queue: usize,
}

/// Range of `queue`.
const QUEUE_RANGE: std::ops::RangeInclusive<i64> = 1..=1_048_576;

impl Validator<'_> {
    pub(in crate::config) fn dnstap(
        &mut self,
        spec: &DnstapSpec,
        source: &ConfigSource,
    ) -> Option<DnstapConfig> {
        let root = KeyPath::root().key("dnstap");
        let socket = match spec.socket.as_deref() {
            Some(path) if !path.is_empty() => Some(source.base_dir.join(path)),
            _ => {
                self.error(
                    root.key("socket"),
                    "missing: the Unix socket of the dnstap consumer (e.g. fstrm_capture -u PATH)",
                );
                None
            }
        };
        let queue = match spec.queue {
            None => defaults::QUEUE,
            Some(n) if QUEUE_RANGE.contains(&n) => n as usize,
            Some(n) => {
                self.error(root.key("queue"), format!("{n} is out of range 1–1048576"));
                defaults::QUEUE
            }
        };
        let queries = spec.log_queries.unwrap_or(defaults::LOG_QUERIES);
        let responses = spec.log_responses.unwrap_or(defaults::LOG_RESPONSES);
        if !queries && !responses {
            self.error(
                root.key("log_queries"),
                "both log_queries and log_responses are false; remove [dnstap] to turn it off",
            );
        }
        let identity = spec.identity.clone().unwrap_or_else(host_name);
        let version = spec
            .version
            .clone()
            .unwrap_or_else(|| format!("failoverd {}", env!("CARGO_PKG_VERSION")));
        Some(DnstapConfig {
            socket: socket?,
            identity,
            version,
            queries,
            responses,
            queue,
        })
    }
}

/// This machine's host name (empty if it cannot be read). Asked of the kernel, not
/// read from /proc/sys, which the hardened units hide (`ProcSubset=pid`).
fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `buf.len()` bytes into `buf`.
    if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } != 0 {
        return String::new();
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).trim().to_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_host_name_is_the_kernels() {
        let proc = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
        assert_eq!(super::host_name(), proc.trim());
        assert!(!super::host_name().is_empty());
    }
}
