//! `Route53Client`: pacing over any [`Route53Api`] (token bucket, backoff and jitter on
//! throttling, one change in flight per zone, pagination, INSYNC polling, metrics).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::config::Route53Config;
use crate::model::{RandomSource, SplitMix64};
use crate::sync::batch::Change;
use crate::sync::metrics::SyncMetrics;
use crate::sync::model::{ExistingHealthCheck, HealthCheckSpec, RecordSet, bare_id};
use crate::sync::pace::{PollPolicy, RetryPolicy, TokenBucket};

use super::*;

/// Tuning of the [`Route53Client`] beyond `[route53]` (tests shorten the waits).
#[derive(Clone, Debug)]
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct ClientOptions {
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
pub(crate) enum Propagation {
    /// INSYNC after this long.
    InSync(Duration),
    /// Still PENDING when the wait ended.
    TimedOut(Duration),
}

/// A paced, retrying Route 53 client for the agent.
#[cfg_attr(feature = "testing", visibility::make(pub))]
pub(crate) struct Route53Client {
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
    pub(crate) async fn connect(
        config: &Route53Config,
        options: ClientOptions,
        metrics: Arc<SyncMetrics>,
    ) -> Self {
        let api = SdkRoute53::connect(config, &options).await;
        Self::new(Arc::new(api), config, options, metrics)
    }

    /// Wraps any [`Route53Api`] with pacing from the `[route53]` settings.
    #[cfg_attr(feature = "testing", visibility::make(pub))]
    pub(crate) fn new(
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
    pub(crate) fn metrics(&self) -> &Arc<SyncMetrics> {
        &self.metrics
    }

    /// A random number (for caller-reference nonces).
    pub(crate) fn random(&self) -> u64 {
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
    pub(crate) async fn hosted_zone_id(&self, name: &str) -> Result<String, ApiError> {
        self.call("ListHostedZonesByName", || self.api.find_hosted_zone(name))
            .await?
            .ok_or_else(|| ApiError::NoSuchZone(name.to_owned()))
    }

    /// Every record set of a zone: pages followed with all three cursors, at most
    /// `max_pages` pages, failing if a cursor repeats (moto loops on record sets that
    /// share a name and type and exceed the page size). Exact duplicates across pages
    /// are dropped.
    pub(crate) async fn list_all_record_sets(
        &self,
        zone_id: &str,
    ) -> Result<Vec<RecordSet>, ApiError> {
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
    pub(crate) async fn list_all_health_checks(
        &self,
    ) -> Result<Vec<ExistingHealthCheck>, ApiError> {
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
    pub(crate) async fn create_health_check(
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
    pub(crate) async fn update_health_check(
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
    pub(crate) async fn tag_health_check(
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
    pub(crate) async fn delete_health_check(&self, id: &str) -> Result<(), ApiError> {
        self.call("DeleteHealthCheck", || self.api.delete_health_check(id))
            .await
    }

    /// The lock serialising changes to one hosted zone.
    pub(crate) fn zone_lock(&self, zone_id: &str) -> Arc<tokio::sync::Mutex<()>> {
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
    pub(crate) async fn change_and_wait(
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
    pub(crate) async fn wait_in_sync(
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
