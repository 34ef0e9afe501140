//! `type = "dns"` checks.

use crate::config::checks::CheckKind;
use crate::config::defaults;
use crate::config::diagnostics::KeyPath;
use crate::config::spec::DnsCheckSpec;
use crate::config::validate::{Validator, normalize_name};

/// A DNS check.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct DnsCheck {
    /// Port.
    pub port: u16,
    /// Name queried.
    pub query_name: String,
    /// Type queried (code).
    pub query_type: u16,
    /// Expected response code.
    pub expect_rcode: u16,
    /// Whether an answer record is required.
    pub expect_answer: bool,
}

impl Validator<'_> {
    /// A `dns` check.
    pub(in crate::config) fn dns_check(
        &mut self,
        spec: &DnsCheckSpec,
        port: u16,
        path: &KeyPath,
    ) -> CheckKind {
        let query_name = match spec.query_name.as_deref().map(normalize_name) {
            Some(Ok(n)) => n,
            Some(Err(e)) => {
                self.error(path.key("query_name"), e);
                ".".into()
            }
            None => {
                self.error(path.key("query_name"), "dns checks need query_name");
                ".".into()
            }
        };
        let t = spec
            .query_type
            .as_deref()
            .unwrap_or(defaults::checks::QUERY_TYPE);
        let query_type = match t
            .to_ascii_uppercase()
            .parse::<hickory_proto::rr::RecordType>()
        {
            Ok(rt) => u16::from(rt),
            Err(_) => {
                self.error(
                    path.key("query_type"),
                    format!("{t:?} is not a record type"),
                );
                1
            }
        };
        let expect_rcode = match spec
            .expect_rcode
            .as_deref()
            .unwrap_or(defaults::checks::EXPECT_RCODE)
            .to_ascii_uppercase()
            .as_str()
        {
            "NOERROR" => 0,
            "FORMERR" => 1,
            "SERVFAIL" => 2,
            "NXDOMAIN" => 3,
            "NOTIMP" => 4,
            "REFUSED" => 5,
            other => {
                self.error(
                    path.key("expect_rcode"),
                    format!("{other:?} is not a response code (NOERROR, NXDOMAIN, ...)"),
                );
                0
            }
        };
        CheckKind::Dns(DnsCheck {
            port,
            query_name,
            query_type,
            expect_rcode,
            expect_answer: spec.expect_answer.unwrap_or(expect_rcode == 0),
        })
    }
}
