//! `SdkRoute53`: the [`Route53Api`] over `aws-sdk-route53`, converting to and from SDK
//! types (the only file that sees them).

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_route53::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_route53::types as sdk;

use crate::config::Route53Config;
use crate::sync::batch::{Action, Change};
use crate::sync::model::{
    AliasTarget, ExistingHealthCheck, FailoverRole, HealthCheckProtocol, HealthCheckRef,
    HealthCheckSpec, RecordKey, RecordSet, RecordType, Routing, bare_id, canonical_name,
};

use super::*;

/// [`Route53Api`] over the AWS SDK.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct SdkRoute53 {
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
    pub(crate) fn new(client: aws_sdk_route53::Client) -> Self {
        Self { client }
    }

    /// Builds an SDK client from the `[route53]` settings: its region and endpoint
    /// override, static credentials when given (tests) or else the standard chain,
    /// rustls + ring for TLS, and SDK retries off (the [`Route53Client`] retries).
    #[cfg_attr(feature = "testing", visibility::make(pub))]
    pub(crate) async fn connect(config: &Route53Config, options: &ClientOptions) -> Self {
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
