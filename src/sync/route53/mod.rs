//! The Route 53 adapter: the only module that sees AWS SDK types.
//!
//! ```text
//!   Route53Client  (pacing: token bucket, backoff + jitter on Throttling and
//!        │          PriorRequestNotComplete, one change in flight per zone,
//!        │          pagination with a page cap, INSYNC polling, metrics)
//!        ▼
//!   dyn Route53Api (narrow trait: the ten calls the agent makes, in our own types)
//!        ▼
//!   SdkRoute53     (aws-sdk-route53; converts to and from SDK types)
//! ```
//!
//! Credentials come from the standard AWS chain (environment, profile, web identity,
//! ECS, IMDS) unless [`ClientOptions::static_credentials`] is set (tests). They are
//! never logged: the SDK redacts them, and nothing here prints the configuration.

use std::collections::BTreeMap;

use async_trait::async_trait;

use crate::sync::batch::Change;
use crate::sync::model::{ExistingHealthCheck, HealthCheckSpec, RecordSet, RecordType};

pub(crate) mod aws;
pub(crate) mod client;

pub(crate) use self::aws::SdkRoute53;
pub(crate) use self::client::{ClientOptions, Propagation, Route53Client};

/// Errors of Route 53 calls, in our own terms.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) enum ApiError {
    /// Request rate exceeded (retried with backoff).
    #[error("Throttling: {0}")]
    Throttling(String),
    /// A previous change to the zone is still being processed (retried with backoff).
    #[error("PriorRequestNotComplete: {0}")]
    PriorRequestNotComplete(String),
    /// Route 53 rejected a change batch (not retried; the batch is bisected).
    #[error("InvalidChangeBatch: {0}")]
    InvalidChangeBatch(String),
    /// Network failure, timeout or server error (retried with backoff).
    #[error("transient failure: {0}")]
    Transient(String),
    /// Any other error answer.
    #[error("{code}: {message}")]
    Service {
        /// Route 53 error code.
        code: String,
        /// Its message.
        message: String,
    },
    /// Something could not be expressed in or read from the API.
    #[error("cannot convert: {0}")]
    Conversion(String),
    /// Listing did not finish within the page cap, or did not advance.
    #[error("pagination: {0}")]
    Pagination(String),
    /// A hosted zone does not exist.
    #[error(
        "no hosted zone named {0} in this account: create it, or give its id as \
         hosted_zone_id in [[route53.zones]]"
    )]
    NoSuchZone(String),
    /// No credentials anywhere in the AWS chain (not retried).
    #[error(
        "no AWS credentials: tried the environment (AWS_ACCESS_KEY_ID and \
         AWS_SECRET_ACCESS_KEY), the shared files (~/.aws/credentials, AWS_PROFILE), web \
         identity (AWS_WEB_IDENTITY_TOKEN_FILE), the ECS container and the EC2 instance \
         metadata; provide one of them"
    )]
    NoCredentials,
    /// The credentials were refused (not retried).
    #[error(
        "Route 53 refused the credentials ({code}: {message}): check the access key, \
         secret and session token in use, and that its IAM policy allows the call (README: \
         IAM policy)"
    )]
    Denied {
        /// The error code (or the HTTP status).
        code: String,
        /// Route 53's message.
        message: String,
    },
}

impl ApiError {
    /// Whether the request may succeed if retried later.
    pub(crate) fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Throttling(_) | Self::PriorRequestNotComplete(_) | Self::Transient(_)
        )
    }

    /// The Route 53 error code, when there is one.
    #[cfg_attr(feature = "testing", visibility::make(pub))]
    #[cfg(feature = "testing")]
    pub(crate) fn code(&self) -> Option<&str> {
        match self {
            Self::Throttling(_) => Some("Throttling"),
            Self::PriorRequestNotComplete(_) => Some("PriorRequestNotComplete"),
            Self::InvalidChangeBatch(_) => Some("InvalidChangeBatch"),
            Self::Service { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// Resume point of ListResourceRecordSets: all three cursors.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct RecordCursor {
    /// NextRecordName.
    pub name: String,
    /// NextRecordType.
    pub record_type: RecordType,
    /// NextRecordIdentifier.
    pub identifier: Option<String>,
}

/// One page of ListResourceRecordSets.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct RecordSetPage {
    /// Record sets of the page.
    pub records: Vec<RecordSet>,
    /// Where the next page starts (None: last page).
    pub next: Option<RecordCursor>,
}

/// One page of ListHealthChecks (tags not included).
#[derive(Clone, Debug)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct HealthCheckPage {
    /// Health checks of the page.
    pub checks: Vec<ExistingHealthCheck>,
    /// Marker of the next page (None: last page).
    pub next_marker: Option<String>,
}

/// Submitted change status.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct ChangeInfo {
    /// Change id (bare).
    pub id: String,
    /// Whether the change has propagated to every Route 53 server.
    pub in_sync: bool,
}

/// The Route 53 calls the agent makes, in its own types (the ExternalDNS
/// `Route53API` idea). Implemented by [`SdkRoute53`].
#[async_trait]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) trait Route53Api: Send + Sync {
    /// The id of the hosted zone named `name` (canonical), if any.
    async fn find_hosted_zone(&self, name: &str) -> Result<Option<String>, ApiError>;
    /// One page of a zone's record sets.
    async fn list_record_sets(
        &self,
        zone_id: &str,
        start: Option<&RecordCursor>,
        max_items: i32,
    ) -> Result<RecordSetPage, ApiError>;
    /// One page of the account's health checks.
    async fn list_health_checks(&self, marker: Option<&str>) -> Result<HealthCheckPage, ApiError>;
    /// Tags of up to 10 health checks.
    async fn list_health_check_tags(
        &self,
        ids: &[String],
    ) -> Result<BTreeMap<String, BTreeMap<String, String>>, ApiError>;
    /// Creates a health check; returns its id.
    async fn create_health_check(
        &self,
        caller_reference: &str,
        spec: &HealthCheckSpec,
    ) -> Result<String, ApiError>;
    /// Updates a health check in place.
    async fn update_health_check(
        &self,
        id: &str,
        version: i64,
        old: &HealthCheckSpec,
        new: &HealthCheckSpec,
    ) -> Result<(), ApiError>;
    /// Deletes a health check.
    async fn delete_health_check(&self, id: &str) -> Result<(), ApiError>;
    /// Adds or replaces tags of a health check.
    async fn tag_health_check(
        &self,
        id: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<(), ApiError>;
    /// Submits one change batch.
    async fn change_record_sets(
        &self,
        zone_id: &str,
        changes: &[Change],
        comment: &str,
    ) -> Result<ChangeInfo, ApiError>;
    /// Status of a change.
    async fn get_change(&self, id: &str) -> Result<ChangeInfo, ApiError>;
}
