//! `type = "http"` and `"https"` checks.

use std::path::PathBuf;

use crate::config::checks::CheckKind;
use crate::config::defaults;
use crate::config::diagnostics::KeyPath;
use crate::config::spec::{CheckSpec, HttpCheckSpec, StatusSpec};
use crate::config::validate::Validator;

/// An HTTP(S) check.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct HttpCheck {
    /// HTTPS.
    pub tls: bool,
    /// Port.
    pub port: u16,
    /// Method.
    pub method: String,
    /// Path (starts with `/`).
    pub path: String,
    /// Host header and TLS server name (None: the endpoint's address).
    pub host: Option<String>,
    /// Extra request headers.
    pub headers: Vec<(String, String)>,
    /// Accepted statuses.
    pub expect_status: Vec<(u16, u16)>,
    /// Required body text (first 64 KiB).
    pub expect_body: Option<String>,
    /// Validate the certificate chain and name.
    pub tls_verify: bool,
    /// Extra CA certificates (PEM) trusted besides the system store.
    pub ca_file: Option<PathBuf>,
}

impl Validator<'_> {
    /// An `http` or (`tls`) `https` check.
    pub(in crate::config) fn http_check(
        &mut self,
        check: &CheckSpec,
        spec: &HttpCheckSpec,
        tls: bool,
        path: &KeyPath,
        base_dir: &std::path::Path,
    ) -> CheckKind {
        let kind_name = &check.type_name;
        if !tls {
            for (key, present) in [
                ("tls_verify", spec.tls_verify.is_some()),
                ("ca_file", spec.ca_file.is_some()),
            ] {
                if present {
                    self.error(
                        path.key(key),
                        format!("`{key}` does not apply to {kind_name} checks"),
                    );
                }
            }
        }
        let port = if tls {
            defaults::checks::HTTPS_PORT
        } else {
            defaults::checks::HTTP_PORT
        };
        let port = self.check_port(check, Some(i64::from(port)), path);
        if let Some(file) = spec.ca_file.as_ref().filter(|_| tls) {
            if let Err(e) = std::fs::read(base_dir.join(file)) {
                self.warning(
                    path.key("ca_file"),
                    format!(
                        "cannot read {file}: {e}; this check's probes would abstain \
                         (client_setup) until it is readable"
                    ),
                );
            }
        }
        let method = spec
            .method
            .clone()
            .unwrap_or_else(|| defaults::checks::METHOD.into());
        if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
            self.error(
                path.key("method"),
                format!("{method:?} is not an HTTP method (e.g. GET, HEAD)"),
            );
        }
        let http_path = spec
            .path
            .clone()
            .unwrap_or_else(|| defaults::checks::PATH.into());
        if !http_path.starts_with('/') {
            self.error(
                path.key("path"),
                format!("{http_path:?} must start with '/'"),
            );
        }
        let mut expect_status = Vec::new();
        for (i, status) in spec.expect_status.iter().flatten().enumerate() {
            match parse_status(status) {
                Ok(range) => expect_status.push(range),
                Err(e) => self.error(path.key("expect_status").index(i), e),
            }
        }
        if expect_status.is_empty() {
            for status in defaults::checks::EXPECT_STATUS {
                expect_status.extend(parse_status(&StatusSpec::Range((*status).to_owned())));
            }
        }
        if let Some(body) = &spec.expect_body {
            if body.is_empty() || body.len() > 1024 {
                self.error(path.key("expect_body"), "must be 1 to 1024 characters");
            }
        }
        CheckKind::Http(HttpCheck {
            tls,
            port,
            method,
            path: http_path,
            host: spec.host.clone(),
            headers: spec
                .headers
                .clone()
                .unwrap_or_default()
                .into_iter()
                .collect(),
            expect_status,
            expect_body: spec.expect_body.clone(),
            tls_verify: spec.tls_verify.unwrap_or(defaults::checks::TLS_VERIFY),
            ca_file: spec.ca_file.as_ref().map(|f| base_dir.join(f)),
        })
    }
}

pub(in crate::config) fn parse_status(status: &StatusSpec) -> Result<(u16, u16), String> {
    let (low, high) = match status {
        StatusSpec::Code(code) => (*code, *code),
        StatusSpec::Range(text) => {
            let parse = |t: &str| {
                t.trim()
                    .parse::<i64>()
                    .map_err(|_| format!("{text:?} is not a status or range like \"200-399\""))
            };
            match text.split_once('-') {
                Some((a, b)) => (parse(a)?, parse(b)?),
                None => {
                    let code = parse(text)?;
                    (code, code)
                }
            }
        }
    };
    if !(100..=599).contains(&low) || !(100..=599).contains(&high) || low > high {
        return Err(format!(
            "{low}-{high} is not a range of HTTP statuses (100-599)"
        ));
    }
    Ok((low as u16, high as u16))
}
