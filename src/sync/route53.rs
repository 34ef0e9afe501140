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

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_route53::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_route53::types as sdk;
use tokio::time::Instant;

use super::batch::{Action, Change};
use super::metrics::SyncMetrics;
use super::model::{
    AliasTarget, ExistingHealthCheck, FailoverRole, HealthCheckProtocol, HealthCheckRef,
    HealthCheckSpec, RecordKey, RecordSet, RecordType, Routing, bare_id, canonical_name,
};
use super::pace::{PollPolicy, RetryPolicy, TokenBucket};
use crate::config::Route53Config;
use crate::model::{RandomSource, SplitMix64};

/// Errors of Route 53 calls, in our own terms.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
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
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Throttling(_) | Self::PriorRequestNotComplete(_) | Self::Transient(_)
        )
    }

    /// The Route 53 error code, when there is one.
    pub fn code(&self) -> Option<&str> {
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
pub struct RecordCursor {
    /// NextRecordName.
    pub name: String,
    /// NextRecordType.
    pub record_type: RecordType,
    /// NextRecordIdentifier.
    pub identifier: Option<String>,
}

/// One page of ListResourceRecordSets.
#[derive(Clone, Debug)]
pub struct RecordSetPage {
    /// Record sets of the page.
    pub records: Vec<RecordSet>,
    /// Where the next page starts (None: last page).
    pub next: Option<RecordCursor>,
}

/// One page of ListHealthChecks (tags not included).
#[derive(Clone, Debug)]
pub struct HealthCheckPage {
    /// Health checks of the page.
    pub checks: Vec<ExistingHealthCheck>,
    /// Marker of the next page (None: last page).
    pub next_marker: Option<String>,
}

/// Submitted change status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangeInfo {
    /// Change id (bare).
    pub id: String,
    /// Whether the change has propagated to every Route 53 server.
    pub in_sync: bool,
}

/// The Route 53 calls the agent makes, in its own types (the ExternalDNS
/// `Route53API` idea). Implemented by [`SdkRoute53`].
#[async_trait]
pub trait Route53Api: Send + Sync {
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

/// [`Route53Api`] over the AWS SDK.
#[derive(Clone, Debug)]
pub struct SdkRoute53 {
    client: aws_sdk_route53::Client,
}

/// Converts an SDK error; the full context is kept in the message.
/// The innermost cause of an error, in words ("Connection refused (os error 111)").
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

fn api_error<E>(error: SdkError<E, aws_sdk_route53::config::http::HttpResponse>) -> ApiError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let code = error.code().map(str::to_owned);
    let message = error
        .message()
        .map(str::to_owned)
        .unwrap_or_else(|| DisplayErrorContext(&error).to_string());
    let context = DisplayErrorContext(&error).to_string();
    if matches!(error, SdkError::DispatchFailure(_))
        && (context.contains("no credentials found") || context.contains("CredentialsNotLoaded"))
    {
        return ApiError::NoCredentials;
    }
    if let Some(
        denied @ ("InvalidClientTokenId"
        | "SignatureDoesNotMatch"
        | "UnrecognizedClientException"
        | "AccessDenied"
        | "AccessDeniedException"
        | "ExpiredToken"
        | "InvalidSignatureException"
        | "MissingAuthenticationToken"
        | "IncompleteSignature"),
    ) = code.as_deref()
    {
        return ApiError::Denied {
            code: denied.to_owned(),
            message,
        };
    }
    let status = error.raw_response().map(|r| r.status().as_u16());
    if code.is_none() && matches!(status, Some(401 | 403)) {
        return ApiError::Denied {
            code: format!("HTTP {}", status.unwrap_or_default()),
            message: "no error code in the answer".to_owned(),
        };
    }
    match (&error, code.as_deref()) {
        (_, Some("Throttling" | "ThrottlingException" | "TooManyRequestsException")) => {
            ApiError::Throttling(message)
        }
        (_, Some("PriorRequestNotComplete")) => ApiError::PriorRequestNotComplete(message),
        (_, Some("InvalidChangeBatch")) => ApiError::InvalidChangeBatch(message),
        (
            _,
            Some(
                "ServiceUnavailable"
                | "InternalError"
                | "InternalFailure"
                | "RequestTimeout"
                | "RequestTimeoutException",
            ),
        ) => ApiError::Transient(message),
        (SdkError::DispatchFailure(_) | SdkError::TimeoutError(_), _) => {
            ApiError::Transient(format!(
                "cannot reach the Route 53 API: {}; check [route53] endpoint_url and region, the \
             network, and any proxy (HTTPS_PROXY)",
                root_cause(&error)
            ))
        }
        (SdkError::ResponseError(_), _) => ApiError::Transient(format!(
            "unreadable answer from the Route 53 API: {}",
            root_cause(&error)
        )),
        (_, Some(code)) => ApiError::Service {
            code: code.to_owned(),
            message,
        },
        (_, None) => ApiError::Service {
            code: "Unknown".into(),
            message: DisplayErrorContext(&error).to_string(),
        },
    }
}

fn conversion(error: impl std::fmt::Display) -> ApiError {
    ApiError::Conversion(error.to_string())
}

/// An SDK record set from ours. A health check given by key (not yet created) cannot
/// be sent.
fn to_sdk_record(set: &RecordSet) -> Result<sdk::ResourceRecordSet, ApiError> {
    let mut builder = sdk::ResourceRecordSet::builder()
        .name(&set.key.name)
        .r#type(sdk::RrType::from(set.key.record_type.as_str()));
    if let Some(id) = &set.key.set_identifier {
        builder = builder.set_identifier(id);
    }
    builder = match &set.routing {
        Routing::Simple => builder,
        Routing::Weighted { weight } => builder.weight(i64::from(*weight)),
        Routing::Failover { role } => {
            builder.failover(sdk::ResourceRecordSetFailover::from(role.as_str()))
        }
        Routing::MultiValue => builder.multi_value_answer(true),
        Routing::Other { description } => {
            return Err(ApiError::Conversion(format!(
                "routing policy {description} is never written"
            )));
        }
    };
    if let Some(ttl) = set.ttl {
        builder = builder.ttl(i64::from(ttl));
    }
    for value in &set.values {
        builder = builder.resource_records(
            sdk::ResourceRecord::builder()
                .value(value)
                .build()
                .map_err(conversion)?,
        );
    }
    if let Some(alias) = &set.alias {
        builder = builder.alias_target(
            sdk::AliasTarget::builder()
                .hosted_zone_id(bare_id(&alias.hosted_zone_id))
                .dns_name(&alias.dns_name)
                .evaluate_target_health(alias.evaluate_target_health)
                .build()
                .map_err(conversion)?,
        );
    }
    match &set.health_check {
        Some(HealthCheckRef::Id(id)) => builder = builder.health_check_id(bare_id(id)),
        Some(HealthCheckRef::Key(key)) => {
            return Err(ApiError::Conversion(format!(
                "health check of {key} has no id yet"
            )));
        }
        None => {}
    }
    builder.build().map_err(conversion)
}

/// Our record set from the SDK's.
fn from_sdk_record(set: &sdk::ResourceRecordSet) -> RecordSet {
    let alias = set.alias_target().map(|a| AliasTarget {
        hosted_zone_id: bare_id(a.hosted_zone_id()).to_owned(),
        dns_name: canonical_name(a.dns_name()),
        evaluate_target_health: a.evaluate_target_health(),
    });
    let routing = if let Some(failover) = set.failover() {
        Routing::Failover {
            role: if failover.as_str() == "SECONDARY" {
                FailoverRole::Secondary
            } else {
                FailoverRole::Primary
            },
        }
    } else if let Some(weight) = set.weight() {
        Routing::Weighted {
            weight: weight.clamp(0, 255) as u8,
        }
    } else if set.multi_value_answer() == Some(true) {
        Routing::MultiValue
    } else if let Some(region) = set.region() {
        Routing::Other {
            description: format!("latency {}", region.as_str()),
        }
    } else if set.geo_location().is_some() {
        Routing::Other {
            description: "geolocation".into(),
        }
    } else if set.cidr_routing_config().is_some() {
        Routing::Other {
            description: "cidr".into(),
        }
    } else if set.geo_proximity_location().is_some() {
        Routing::Other {
            description: "geoproximity".into(),
        }
    } else if set.set_identifier().is_some() {
        Routing::Other {
            description: "unknown routing".into(),
        }
    } else {
        Routing::Simple
    };
    let mut values: Vec<String> = set
        .resource_records()
        .iter()
        .map(|r| r.value().to_owned())
        .collect();
    values.sort();
    RecordSet {
        key: RecordKey::new(
            set.name(),
            RecordType::from_mnemonic(set.r#type().as_str()),
            set.set_identifier().map(str::to_owned),
        ),
        // moto reports TTL 0 on aliases; Route 53 reports none.
        ttl: if alias.is_some() {
            None
        } else {
            set.ttl().and_then(|t| u32::try_from(t).ok())
        },
        values,
        alias,
        routing,
        health_check: set
            .health_check_id()
            .map(|id| HealthCheckRef::Id(bare_id(id).to_owned())),
    }
}

/// A calculated check's children as Route 53 ids (every key resolved by then).
fn child_ids(spec: &HealthCheckSpec) -> Result<Vec<String>, ApiError> {
    spec.children
        .iter()
        .map(|child| match child {
            HealthCheckRef::Id(id) => Ok(id.clone()),
            HealthCheckRef::Key(key) => Err(ApiError::Conversion(format!(
                "child health check {key} has no id yet"
            ))),
        })
        .collect()
}

fn from_sdk_check(check: &sdk::HealthCheck) -> ExistingHealthCheck {
    let spec = match check.health_check_config() {
        Some(config) => {
            let mut regions: Vec<String> = config
                .regions()
                .iter()
                .map(|r| r.as_str().to_owned())
                .collect();
            regions.sort();
            HealthCheckSpec {
                protocol: HealthCheckProtocol::from_name(config.r#type().as_str()),
                ip_address: config.ip_address().map(str::to_owned),
                port: config.port().and_then(|p| u16::try_from(p).ok()),
                resource_path: config.resource_path().map(str::to_owned),
                fqdn: config.fully_qualified_domain_name().map(str::to_owned),
                search_string: config.search_string().map(str::to_owned),
                request_interval: config
                    .request_interval()
                    .and_then(|v| u8::try_from(v).ok())
                    .unwrap_or(30),
                failure_threshold: config
                    .failure_threshold()
                    .and_then(|v| u8::try_from(v).ok())
                    .unwrap_or(3),
                regions,
                inverted: config.inverted().unwrap_or(false),
                disabled: config.disabled().unwrap_or(false),
                enable_sni: config.enable_sni().unwrap_or(false),
                health_threshold: config
                    .health_threshold()
                    .and_then(|v| u8::try_from(v).ok())
                    .filter(|_| config.r#type() == &sdk::HealthCheckType::Calculated),
                children: {
                    let mut children: Vec<HealthCheckRef> = config
                        .child_health_checks()
                        .iter()
                        .map(|id| HealthCheckRef::Id(bare_id(id).to_owned()))
                        .collect();
                    children.sort();
                    children
                },
            }
        }
        None => HealthCheckSpec {
            protocol: HealthCheckProtocol::Other("unknown".into()),
            ..HealthCheckSpec::default()
        },
    };
    ExistingHealthCheck {
        id: bare_id(check.id()).to_owned(),
        caller_reference: check.caller_reference().to_owned(),
        version: check.health_check_version(),
        spec,
        tags: BTreeMap::new(),
    }
}

fn change_info(info: &sdk::ChangeInfo) -> ChangeInfo {
    ChangeInfo {
        id: bare_id(info.id()).to_owned(),
        in_sync: *info.status() == sdk::ChangeStatus::Insync,
    }
}

impl SdkRoute53 {
    /// Wraps an SDK client.
    pub fn new(client: aws_sdk_route53::Client) -> Self {
        Self { client }
    }

    /// Builds an SDK client from the `[route53]` settings: its region and endpoint
    /// override, static credentials when given (tests) or else the standard chain,
    /// rustls + ring for TLS, and SDK retries off (the [`Route53Client`] retries).
    pub async fn connect(config: &Route53Config, options: &ClientOptions) -> Self {
        use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(Provider::Rustls(CryptoMode::Ring))
            .build_https();
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(config.region.clone()))
            .http_client(http)
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .operation_attempt_timeout(options.attempt_timeout)
                    .build(),
            );
        if let Some(url) = &config.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        if let Some((access_key, secret_key)) = &options.static_credentials {
            loader = loader.credentials_provider(aws_sdk_route53::config::Credentials::new(
                access_key.clone(),
                secret_key.clone(),
                None,
                None,
                "failoverd-static",
            ));
        }
        let shared = loader.load().await;
        Self::new(aws_sdk_route53::Client::new(&shared))
    }
}

#[async_trait]
impl Route53Api for SdkRoute53 {
    async fn find_hosted_zone(&self, name: &str) -> Result<Option<String>, ApiError> {
        let out = self
            .client
            .list_hosted_zones_by_name()
            .dns_name(name)
            .max_items(1)
            .send()
            .await
            .map_err(api_error)?;
        Ok(out
            .hosted_zones()
            .iter()
            .find(|z| canonical_name(z.name()) == canonical_name(name))
            .map(|z| bare_id(z.id()).to_owned()))
    }

    async fn list_record_sets(
        &self,
        zone_id: &str,
        start: Option<&RecordCursor>,
        max_items: i32,
    ) -> Result<RecordSetPage, ApiError> {
        let mut request = self
            .client
            .list_resource_record_sets()
            .hosted_zone_id(zone_id)
            .max_items(max_items);
        if let Some(cursor) = start {
            request = request
                .start_record_name(&cursor.name)
                .start_record_type(sdk::RrType::from(cursor.record_type.as_str()));
            if let Some(identifier) = &cursor.identifier {
                request = request.start_record_identifier(identifier);
            }
        }
        let out = request.send().await.map_err(api_error)?;
        let next = match (
            out.is_truncated(),
            out.next_record_name(),
            out.next_record_type(),
        ) {
            (true, Some(name), Some(record_type)) => Some(RecordCursor {
                name: name.to_owned(),
                record_type: RecordType::from_mnemonic(record_type.as_str()),
                identifier: out.next_record_identifier().map(str::to_owned),
            }),
            _ => None,
        };
        Ok(RecordSetPage {
            records: out
                .resource_record_sets()
                .iter()
                .map(from_sdk_record)
                .collect(),
            next,
        })
    }

    async fn list_health_checks(&self, marker: Option<&str>) -> Result<HealthCheckPage, ApiError> {
        let mut request = self.client.list_health_checks().max_items(1000);
        if let Some(marker) = marker {
            request = request.marker(marker);
        }
        let out = request.send().await.map_err(api_error)?;
        Ok(HealthCheckPage {
            checks: out.health_checks().iter().map(from_sdk_check).collect(),
            next_marker: if out.is_truncated() {
                out.next_marker().map(str::to_owned)
            } else {
                None
            },
        })
    }

    async fn list_health_check_tags(
        &self,
        ids: &[String],
    ) -> Result<BTreeMap<String, BTreeMap<String, String>>, ApiError> {
        let mut request = self
            .client
            .list_tags_for_resources()
            .resource_type(sdk::TagResourceType::Healthcheck);
        for id in ids {
            request = request.resource_ids(id);
        }
        let out = request.send().await.map_err(api_error)?;
        Ok(out
            .resource_tag_sets()
            .iter()
            .filter_map(|set| {
                let id = bare_id(set.resource_id()?).to_owned();
                let tags = set
                    .tags()
                    .iter()
                    .filter_map(|t| Some((t.key()?.to_owned(), t.value()?.to_owned())))
                    .collect();
                Some((id, tags))
            })
            .collect())
    }

    async fn create_health_check(
        &self,
        caller_reference: &str,
        spec: &HealthCheckSpec,
    ) -> Result<String, ApiError> {
        if spec.is_calculated() {
            let config = sdk::HealthCheckConfig::builder()
                .r#type(sdk::HealthCheckType::Calculated)
                .inverted(spec.inverted)
                .disabled(spec.disabled)
                .set_health_threshold(spec.health_threshold.map(i32::from))
                .set_child_health_checks(Some(child_ids(spec)?));
            let out = self
                .client
                .create_health_check()
                .caller_reference(caller_reference)
                .health_check_config(config.build().map_err(conversion)?)
                .send()
                .await
                .map_err(api_error)?;
            return out
                .health_check()
                .map(|c| bare_id(c.id()).to_owned())
                .ok_or_else(|| ApiError::Conversion("CreateHealthCheck returned no check".into()));
        }
        let mut config = sdk::HealthCheckConfig::builder()
            .r#type(sdk::HealthCheckType::from(spec.protocol.as_str()))
            .request_interval(i32::from(spec.request_interval))
            .failure_threshold(i32::from(spec.failure_threshold))
            .inverted(spec.inverted)
            .disabled(spec.disabled)
            .set_ip_address(spec.ip_address.clone())
            .set_port(spec.port.map(i32::from))
            .set_resource_path(spec.resource_path.clone())
            .set_fully_qualified_domain_name(spec.fqdn.clone())
            .set_search_string(spec.search_string.clone());
        if matches!(
            spec.protocol,
            HealthCheckProtocol::Https | HealthCheckProtocol::HttpsStrMatch
        ) {
            config = config.enable_sni(spec.enable_sni);
        }
        for region in &spec.regions {
            config = config.regions(sdk::HealthCheckRegion::from(region.as_str()));
        }
        let out = self
            .client
            .create_health_check()
            .caller_reference(caller_reference)
            .health_check_config(config.build().map_err(conversion)?)
            .send()
            .await
            .map_err(api_error)?;
        out.health_check()
            .map(|c| bare_id(c.id()).to_owned())
            .ok_or_else(|| ApiError::Conversion("CreateHealthCheck returned no check".into()))
    }

    async fn update_health_check(
        &self,
        id: &str,
        version: i64,
        old: &HealthCheckSpec,
        new: &HealthCheckSpec,
    ) -> Result<(), ApiError> {
        if new.is_calculated() {
            self.client
                .update_health_check()
                .health_check_id(id)
                .health_check_version(version)
                .inverted(new.inverted)
                .disabled(new.disabled)
                .set_health_threshold(new.health_threshold.map(i32::from))
                .set_child_health_checks(Some(child_ids(new)?))
                .send()
                .await
                .map_err(api_error)?;
            return Ok(());
        }
        let mut request = self
            .client
            .update_health_check()
            .health_check_id(id)
            .health_check_version(version)
            .failure_threshold(i32::from(new.failure_threshold))
            .inverted(new.inverted)
            .disabled(new.disabled)
            .set_ip_address(new.ip_address.clone())
            .set_port(new.port.map(i32::from))
            .set_resource_path(new.resource_path.clone())
            .set_fully_qualified_domain_name(new.fqdn.clone())
            .set_search_string(new.search_string.clone());
        if matches!(
            new.protocol,
            HealthCheckProtocol::Https | HealthCheckProtocol::HttpsStrMatch
        ) {
            request = request.enable_sni(new.enable_sni);
        }
        for region in &new.regions {
            request = request.regions(sdk::HealthCheckRegion::from(region.as_str()));
        }
        // Fields that must go away are reset explicitly.
        if old.fqdn.is_some() && new.fqdn.is_none() {
            request = request.reset_elements(sdk::ResettableElementName::FullyQualifiedDomainName);
        }
        if old.resource_path.is_some() && new.resource_path.is_none() {
            request = request.reset_elements(sdk::ResettableElementName::ResourcePath);
        }
        if !old.regions.is_empty() && new.regions.is_empty() {
            request = request.reset_elements(sdk::ResettableElementName::Regions);
        }
        request.send().await.map_err(api_error)?;
        Ok(())
    }

    async fn delete_health_check(&self, id: &str) -> Result<(), ApiError> {
        self.client
            .delete_health_check()
            .health_check_id(id)
            .send()
            .await
            .map_err(api_error)?;
        Ok(())
    }

    async fn tag_health_check(
        &self,
        id: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<(), ApiError> {
        let mut request = self
            .client
            .change_tags_for_resource()
            .resource_type(sdk::TagResourceType::Healthcheck)
            .resource_id(id);
        for (key, value) in tags {
            request = request.add_tags(sdk::Tag::builder().key(key).value(value).build());
        }
        request.send().await.map_err(api_error)?;
        Ok(())
    }

    async fn change_record_sets(
        &self,
        zone_id: &str,
        changes: &[Change],
        comment: &str,
    ) -> Result<ChangeInfo, ApiError> {
        let mut batch = sdk::ChangeBatch::builder().comment(comment);
        for change in changes {
            let action = match change.action {
                Action::Create => sdk::ChangeAction::Create,
                Action::Upsert => sdk::ChangeAction::Upsert,
                Action::Delete => sdk::ChangeAction::Delete,
            };
            batch = batch.changes(
                sdk::Change::builder()
                    .action(action)
                    .resource_record_set(to_sdk_record(&change.record)?)
                    .build()
                    .map_err(conversion)?,
            );
        }
        let out = self
            .client
            .change_resource_record_sets()
            .hosted_zone_id(zone_id)
            .change_batch(batch.build().map_err(conversion)?)
            .send()
            .await
            .map_err(api_error)?;
        out.change_info()
            .map(change_info)
            .ok_or_else(|| ApiError::Conversion("no ChangeInfo in the answer".into()))
    }

    async fn get_change(&self, id: &str) -> Result<ChangeInfo, ApiError> {
        let out = self
            .client
            .get_change()
            .id(id)
            .send()
            .await
            .map_err(api_error)?;
        out.change_info()
            .map(change_info)
            .ok_or_else(|| ApiError::Conversion("no ChangeInfo in the answer".into()))
    }
}

/// Tuning of the [`Route53Client`] beyond `[route53]` (tests shorten the waits).
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Retries of throttled and transient failures.
    pub retry: RetryPolicy,
    /// Polling of GetChange until INSYNC.
    pub poll: PollPolicy,
    /// MaxItems of ListResourceRecordSets (Route 53 returns at most 300).
    pub page_size: i32,
    /// Most pages read from one listing before giving up.
    pub max_pages: usize,
    /// Timeout of one request attempt.
    pub attempt_timeout: Duration,
    /// Static (access key, secret key) instead of the standard credential chain.
    pub static_credentials: Option<(String, String)>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            retry: RetryPolicy::default(),
            poll: PollPolicy::default(),
            page_size: 300,
            max_pages: 10_000,
            attempt_timeout: Duration::from_secs(30),
            static_credentials: None,
        }
    }
}

/// Result of waiting for a change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Propagation {
    /// INSYNC after this long.
    InSync(Duration),
    /// Still PENDING when the wait ended.
    TimedOut(Duration),
}

/// A paced, retrying Route 53 client for the agent.
pub struct Route53Client {
    api: Arc<dyn Route53Api>,
    bucket: tokio::sync::Mutex<TokenBucket>,
    rng: Mutex<SplitMix64>,
    zone_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    options: ClientOptions,
    change_timeout: Duration,
    metrics: Arc<SyncMetrics>,
}

impl Route53Client {
    /// Connects with the `[route53]` settings.
    pub async fn connect(
        config: &Route53Config,
        options: ClientOptions,
        metrics: Arc<SyncMetrics>,
    ) -> Self {
        let api = SdkRoute53::connect(config, &options).await;
        Self::new(Arc::new(api), config, options, metrics)
    }

    /// Wraps any [`Route53Api`] with pacing from the `[route53]` settings.
    pub fn new(
        api: Arc<dyn Route53Api>,
        config: &Route53Config,
        options: ClientOptions,
        metrics: Arc<SyncMetrics>,
    ) -> Self {
        let seed = crate::runtime::random::u64();
        Self {
            api,
            bucket: tokio::sync::Mutex::new(TokenBucket::new(
                config.max_requests_per_second,
                config.burst,
                Instant::now(),
            )),
            rng: Mutex::new(SplitMix64::new(seed)),
            zone_locks: Mutex::new(HashMap::new()),
            options,
            change_timeout: config.change_timeout,
            metrics,
        }
    }

    /// The metrics this client updates.
    pub fn metrics(&self) -> &Arc<SyncMetrics> {
        &self.metrics
    }

    /// A random number (for caller-reference nonces).
    pub fn random(&self) -> u64 {
        self.rng.lock().map_or(0, |mut rng| rng.next_u64())
    }

    /// Runs one API operation: waits for a token, sends, and retries throttled and
    /// transient failures with exponential backoff and jitter.
    async fn call<T, F, Fut>(&self, operation: &'static str, mut send: F) -> Result<T, ApiError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ApiError>>,
    {
        let mut retry = 0;
        let started = Instant::now();
        loop {
            let wait = self.bucket.lock().await.take(Instant::now());
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            self.metrics.api_call(operation);
            let error = match send().await {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            match &error {
                ApiError::Throttling(_) => self.metrics.throttled(false),
                ApiError::PriorRequestNotComplete(_) => self.metrics.throttled(true),
                _ => {}
            }
            let delay = match self.rng.lock() {
                Ok(mut rng) => self.options.retry.delay(retry, &mut *rng),
                Err(_) => self.options.retry.base_delay,
            };
            // Throttling may be waited out for a minute; a network or server failure
            // is retried within a few seconds, then reported.
            let out_of_time = matches!(error, ApiError::Transient(_))
                && started.elapsed() + delay > self.options.retry.transient_budget;
            if !error.is_retryable() || retry + 1 >= self.options.retry.max_attempts || out_of_time
            {
                self.metrics.api_error();
                let error = match error {
                    ApiError::Transient(message) if retry > 0 => ApiError::Transient(format!(
                        "{message} (tried {} times over {:.1} s)",
                        retry + 1,
                        started.elapsed().as_secs_f64()
                    )),
                    other => other,
                };
                tracing::warn!(operation, attempts = retry + 1, error = %crate::logs::Escaped(&error), "Route 53 request failed");
                return Err(error);
            }
            tracing::debug!(operation, retry, delay_ms = delay.as_millis() as u64, error = %crate::logs::Escaped(&error), "retrying Route 53 request");
            tokio::time::sleep(delay).await;
            retry += 1;
        }
    }

    /// The id of the hosted zone named `name`.
    pub async fn hosted_zone_id(&self, name: &str) -> Result<String, ApiError> {
        self.call("ListHostedZonesByName", || self.api.find_hosted_zone(name))
            .await?
            .ok_or_else(|| ApiError::NoSuchZone(name.to_owned()))
    }

    /// Every record set of a zone: pages followed with all three cursors, at most
    /// `max_pages` pages, failing if a cursor repeats (moto loops on record sets that
    /// share a name and type and exceed the page size). Exact duplicates across pages
    /// are dropped.
    pub async fn list_all_record_sets(&self, zone_id: &str) -> Result<Vec<RecordSet>, ApiError> {
        let mut records: Vec<RecordSet> = Vec::new();
        let mut seen_records: HashSet<RecordSet> = HashSet::new();
        let mut seen_cursors: HashSet<RecordCursor> = HashSet::new();
        let mut cursor: Option<RecordCursor> = None;
        for _ in 0..self.options.max_pages {
            let page = self
                .call("ListResourceRecordSets", || {
                    self.api
                        .list_record_sets(zone_id, cursor.as_ref(), self.options.page_size)
                })
                .await?;
            for record in page.records {
                if seen_records.insert(record.clone()) {
                    records.push(record);
                }
            }
            match page.next {
                None => return Ok(records),
                Some(next) if !seen_cursors.insert(next.clone()) => {
                    return Err(ApiError::Pagination(format!(
                        "ListResourceRecordSets did not advance past {} {}",
                        next.name, next.record_type
                    )));
                }
                Some(next) => cursor = Some(next),
            }
        }
        Err(ApiError::Pagination(format!(
            "more than {} pages of record sets",
            self.options.max_pages
        )))
    }

    /// Every health check of the account, with its tags.
    pub async fn list_all_health_checks(&self) -> Result<Vec<ExistingHealthCheck>, ApiError> {
        let mut checks = Vec::new();
        let mut marker: Option<String> = None;
        let mut seen = HashSet::new();
        let mut pages = 0;
        loop {
            pages += 1;
            if pages > self.options.max_pages {
                return Err(ApiError::Pagination(
                    "too many pages of health checks".into(),
                ));
            }
            let page = self
                .call("ListHealthChecks", || {
                    self.api.list_health_checks(marker.as_deref())
                })
                .await?;
            for check in page.checks {
                if seen.insert(check.id.clone()) {
                    checks.push(check);
                }
            }
            match page.next_marker {
                Some(next) if Some(&next) != marker.as_ref() => marker = Some(next),
                _ => break,
            }
        }
        let ids: Vec<String> = checks
            .iter()
            .map(|c: &ExistingHealthCheck| c.id.clone())
            .collect();
        let mut tags = BTreeMap::new();
        for chunk in ids.chunks(10) {
            let page = self
                .call("ListTagsForResources", || {
                    self.api.list_health_check_tags(chunk)
                })
                .await?;
            tags.extend(page);
        }
        for check in &mut checks {
            if let Some(t) = tags.remove(&check.id) {
                check.tags = t;
            }
        }
        Ok(checks)
    }

    /// Creates a health check and tags it; returns its id.
    pub async fn create_health_check(
        &self,
        caller_reference: &str,
        spec: &HealthCheckSpec,
        tags: &BTreeMap<String, String>,
    ) -> Result<String, ApiError> {
        let id = self
            .call("CreateHealthCheck", || {
                self.api.create_health_check(caller_reference, spec)
            })
            .await?;
        self.tag_health_check(&id, tags).await?;
        Ok(id)
    }

    /// Updates a health check in place.
    pub async fn update_health_check(
        &self,
        id: &str,
        version: i64,
        old: &HealthCheckSpec,
        new: &HealthCheckSpec,
    ) -> Result<(), ApiError> {
        self.call("UpdateHealthCheck", || {
            self.api.update_health_check(id, version, old, new)
        })
        .await
    }

    /// Adds or replaces tags of a health check.
    pub async fn tag_health_check(
        &self,
        id: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<(), ApiError> {
        if tags.is_empty() {
            return Ok(());
        }
        self.call("ChangeTagsForResource", || {
            self.api.tag_health_check(id, tags)
        })
        .await
    }

    /// Deletes a health check.
    pub async fn delete_health_check(&self, id: &str) -> Result<(), ApiError> {
        self.call("DeleteHealthCheck", || self.api.delete_health_check(id))
            .await
    }

    /// The lock serialising changes to one hosted zone.
    pub fn zone_lock(&self, zone_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        match self.zone_locks.lock() {
            Ok(mut locks) => locks
                .entry(bare_id(zone_id).to_owned())
                .or_default()
                .clone(),
            Err(_) => Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    /// Submits one change batch (the caller holds the zone's lock, so one change per
    /// zone is in flight) and waits until it is INSYNC or `change_timeout` passes.
    pub async fn change_and_wait(
        &self,
        zone_id: &str,
        changes: &[Change],
        comment: &str,
    ) -> Result<(ChangeInfo, Propagation), ApiError> {
        let submitted = Instant::now();
        let info = self
            .call("ChangeResourceRecordSets", || {
                self.api.change_record_sets(zone_id, changes, comment)
            })
            .await?;
        let propagation = self.wait_in_sync(&info, submitted).await?;
        Ok((info, propagation))
    }

    /// Polls GetChange until INSYNC, bounded by `change_timeout`.
    pub async fn wait_in_sync(
        &self,
        info: &ChangeInfo,
        submitted: Instant,
    ) -> Result<Propagation, ApiError> {
        let deadline = submitted + self.change_timeout;
        let mut in_sync = info.in_sync;
        let mut poll = 0;
        while !in_sync {
            let now = Instant::now();
            if now >= deadline {
                tracing::warn!(change = %info.id, waited_ms = (now - submitted).as_millis() as u64, "change not INSYNC before change_timeout");
                return Ok(Propagation::TimedOut(now - submitted));
            }
            let delay = self.options.poll.delay(poll).min(deadline - now);
            tokio::time::sleep(delay).await;
            poll += 1;
            in_sync = self
                .call("GetChange", || self.api.get_change(&info.id))
                .await?
                .in_sync;
        }
        let elapsed = submitted.elapsed();
        self.metrics.propagation(elapsed);
        Ok(Propagation::InSync(elapsed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdk_round_trip_of_routed_and_alias_records() {
        let weighted = RecordSet {
            key: RecordKey::new("w.example.com.", RecordType::A, Some("w A one".into())),
            ttl: Some(30),
            values: vec!["192.0.2.1".into()],
            alias: None,
            routing: Routing::Weighted { weight: 7 },
            health_check: Some(HealthCheckRef::Id("abc".into())),
        };
        let alias = RecordSet {
            key: RecordKey::new("a.example.com.", RecordType::A, Some("a A primary".into())),
            ttl: None,
            values: Vec::new(),
            alias: Some(AliasTarget {
                hosted_zone_id: "Z1".into(),
                dns_name: "_pool-x.a.example.com.".into(),
                evaluate_target_health: true,
            }),
            routing: Routing::Failover {
                role: FailoverRole::Secondary,
            },
            health_check: None,
        };
        for set in [weighted, alias] {
            let sdk_set = to_sdk_record(&set).unwrap();
            assert_eq!(from_sdk_record(&sdk_set), set);
        }
        let pending = RecordSet {
            key: RecordKey::new("p.example.com.", RecordType::A, Some("p".into())),
            ttl: Some(30),
            values: vec!["192.0.2.1".into()],
            alias: None,
            routing: Routing::MultiValue,
            health_check: Some(HealthCheckRef::Key("pool/e".into())),
        };
        assert!(matches!(
            to_sdk_record(&pending),
            Err(ApiError::Conversion(_))
        ));
    }
}
