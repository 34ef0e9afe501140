//! Native mode: a dynamic record as Route 53 routing policies and health checks, so
//! Route 53 fails over by itself. Operator overrides made at run time (read from a
//! server's `/v1/health`) are written the way Route 53 understands them:
//!
//! ```text
//!  drain              the endpoint's set gets weight 0 (weighted) or is left out
//!                     (multivalue), and has no health check
//!  force up           its health check is Disabled: Route 53 treats it as healthy
//!  force down         its health check is Disabled and Inverted: always unhealthy
//!  failover to pool   failover records: that pool's link comes first
//!                     weighted/multivalue: PRIMARY alias → _pool-P.www (the pool
//!                     alone), SECONDARY alias → _pools.www (every pool)
//!  min_healthy N > 1  the alias to the pool carries a CALCULATED check, healthy while
//!                     N of the pool's endpoint checks are (HealthThreshold)
//!  dial P %           weighted records: the weights carry the dialled shares (the
//!                     pool takes P % of its weight's share, the rest goes to the
//!                     pools without a dial by weight, as the servers answer);
//!                     failover records over several pools and multivalue records
//!                     cannot split traffic by a share: refused at plan time
//! ```

use super::*;
use crate::health::HealthSource;

/// Where an alias points, and the health check that decides it (None: Route 53
/// evaluates the target's health).
struct Target {
    name: String,
    check: Option<HealthCheckRef>,
}

/// What every set of one native record shares.
struct Native<'r> {
    zone: usize,
    record: &'r DynamicRecord,
    source: RecordSource,
}

impl Builder<'_> {
    pub(super) fn native(
        &mut self,
        zone: usize,
        record: &DynamicRecord,
        name: &str,
        health: &HealthSnapshot,
    ) {
        let label = format!("{name} {}", record.record_type);
        let pools = match &record.pools {
            PoolChoice::Fixed(pools) => pools.clone(),
            PoolChoice::Geo { .. } => {
                self.state.unsupported.push(Unsupported {
                    record: label,
                    reason: "geo records cannot be expressed natively (Route 53 geolocation is \
                             by country and CIDR routing is not supported); use route53 = \
                             \"mirror\""
                        .into(),
                });
                return;
            }
        };
        if let Err(reason) = self.check_endpoints(&pools) {
            self.state.unsupported.push(Unsupported {
                record: label,
                reason,
            });
            return;
        }
        if !matches!(record.all_down, crate::config::AllDown::FailOpen) {
            self.warnings.insert(format!(
                "{label}: all_down is not fail-open, but Route 53 answers as if every \
                 endpoint were healthy when none is"
            ));
        }
        if let Err(reason) = self.check_dials(record, &pools, health) {
            self.state.unsupported.push(Unsupported {
                record: label,
                reason,
            });
            return;
        }
        let pin = self
            .config
            .records
            .iter()
            .position(|r| std::ptr::eq(r, record))
            .and_then(|r| health.pin(crate::model::RecordIndex(r as u32)))
            .filter(|p| pools.contains(p));
        let native = Native {
            zone,
            record,
            source: RecordSource::Native {
                record: name.to_owned(),
                config: config_fingerprint(self.config, record),
            },
        };
        let is_cname = record.record_type == DynamicType::Cname;
        match record.selection {
            // Validation sends primary records to mirror mode; were one here, it
            // would be a failover chain.
            Selection::Failover | Selection::Primary => {
                let style = if is_cname || record.max_answers == 1 {
                    SetStyle::Weighted
                } else {
                    SetStyle::MultiValue
                };
                // A manual failover puts its pool first; the others stay behind it.
                let mut pools: Vec<PoolIndex> = pin
                    .into_iter()
                    .chain(pools.iter().copied().filter(|&p| Some(p) != pin))
                    .collect();
                // A pool whose every endpoint is drained is never chosen: it leaves
                // the chain (unless every pool is drained).
                let config = self.config;
                let serving: Vec<PoolIndex> = pools
                    .iter()
                    .copied()
                    .filter(|&p| {
                        config
                            .pool(p)
                            .endpoints
                            .iter()
                            .any(|&e| !self.drained(e, health))
                    })
                    .collect();
                if !serving.is_empty() {
                    pools = serving;
                }
                if pools.len() == 1 {
                    let endpoints = self.endpoints_of(&pools);
                    self.endpoint_sets(&native, name, &endpoints, style, health);
                } else {
                    self.failover_chain(&native, name, &pools, style, health);
                }
            }
            Selection::Weighted | Selection::Multivalue => {
                let style = match record.selection {
                    Selection::Weighted => SetStyle::Weighted,
                    _ if is_cname => SetStyle::EqualWeights,
                    _ => SetStyle::MultiValue,
                };
                match pin.filter(|_| pools.len() > 1) {
                    Some(pool) => {
                        // The pinned pool alone while it is up, else every pool.
                        let alone = pool_set_name(self.config, pool, name);
                        let endpoints = self.endpoints_of(&[pool]);
                        self.endpoint_sets(&native, &alone, &endpoints, style, health);
                        let every = format!("_pools.{name}");
                        self.spread(&native, &every, &pools, style, health);
                        let primary = Target {
                            check: self.pool_check(pool, health),
                            name: alone,
                        };
                        let secondary = Target {
                            name: every,
                            check: None,
                        };
                        self.failover_pair(&native, name, primary, secondary);
                    }
                    None => self.spread(&native, name, &pools, style, health),
                }
            }
        }
    }

    /// Every endpoint of `pools` at `at`, or, when a pool needs more than one healthy
    /// endpoint and the record is weighted, one weighted alias per pool (weighing
    /// the pool's endpoints together) carrying the pool's calculated check.
    fn spread(
        &mut self,
        native: &Native<'_>,
        at: &str,
        pools: &[PoolIndex],
        style: SetStyle,
        health: &HealthSnapshot,
    ) {
        let config = self.config;
        let needs_quorum = pools.len() > 1 && pools.iter().any(|&p| config.pool(p).min_healthy > 1);
        if !needs_quorum {
            let endpoints = self.endpoints_of(pools);
            self.endpoint_sets(native, at, &endpoints, style, health);
            return;
        }
        if style == SetStyle::MultiValue {
            self.warnings.insert(format!(
                "{at} {}: min_healthy above 1 is not expressed natively for multivalue \
                 records over several pools (Route 53 multivalue answers cannot be aliases); \
                 every healthy endpoint is answered",
                native.record.record_type
            ));
            let endpoints = self.endpoints_of(pools);
            self.endpoint_sets(native, at, &endpoints, style, health);
            return;
        }
        let raw: Vec<u32> = pools
            .iter()
            .map(|&p| {
                config
                    .pool(p)
                    .endpoints
                    .iter()
                    .filter(|&&e| !self.drained(e, health))
                    .map(|&e| match style {
                        SetStyle::EqualWeights => 1,
                        _ => config.endpoint(e).weight.0,
                    })
                    .sum()
            })
            .collect();
        let raw = self.dialled(pools, &raw, health).unwrap_or(raw);
        let weights = scale_weights(&raw);
        let record_type = RecordType::from(native.record.record_type);
        let zone_name = self.state.zones[native.zone].zone.clone();
        for (&pool, weight) in pools.iter().zip(weights) {
            let pool_name = pool_set_name(config, pool, at);
            let endpoints = self.endpoints_of(&[pool]);
            self.endpoint_sets(native, &pool_name, &endpoints, style, health);
            let target = Target {
                check: self.pool_check(pool, health),
                name: pool_name,
            };
            let set_id = set_identifier(at, &zone_name, &record_type, &config.pool(pool).name);
            self.alias_set(native, at, set_id, Routing::Weighted { weight }, target);
        }
    }

    /// `name` fails over through `pools` in order: each link's PRIMARY is a pool, its
    /// SECONDARY the next link (the last link's SECONDARY the last pool).
    fn failover_chain(
        &mut self,
        native: &Native<'_>,
        name: &str,
        pools: &[PoolIndex],
        style: SetStyle,
        health: &HealthSnapshot,
    ) {
        let pool_names: Vec<String> = pools
            .iter()
            .map(|&p| pool_set_name(self.config, p, name))
            .collect();
        for (&pool, pool_name) in pools.iter().zip(&pool_names) {
            let endpoints = self.endpoints_of(&[pool]);
            self.endpoint_sets(native, pool_name, &endpoints, style, health);
        }
        let link = |i: usize| {
            if i == 0 {
                name.to_owned()
            } else {
                format!("_failover-{i}.{name}")
            }
        };
        let last = pools.len() - 1;
        for i in 0..last {
            let primary = Target {
                name: pool_names[i].clone(),
                check: self.pool_check(pools[i], health),
            };
            let secondary = if i + 1 == last {
                Target {
                    name: pool_names[last].clone(),
                    check: self.pool_check(pools[last], health),
                }
            } else {
                Target {
                    name: link(i + 1),
                    check: None,
                }
            };
            self.failover_pair(native, &link(i), primary, secondary);
        }
    }

    /// A PRIMARY and a SECONDARY failover alias at `at`.
    fn failover_pair(&mut self, native: &Native<'_>, at: &str, primary: Target, secondary: Target) {
        let record_type = RecordType::from(native.record.record_type);
        let zone_name = self.state.zones[native.zone].zone.clone();
        for (role, target) in [
            (FailoverRole::Primary, primary),
            (FailoverRole::Secondary, secondary),
        ] {
            let role_name = match role {
                FailoverRole::Primary => "primary",
                FailoverRole::Secondary => "secondary",
            };
            let set_id = set_identifier(at, &zone_name, &record_type, role_name);
            self.alias_set(native, at, set_id, Routing::Failover { role }, target);
        }
    }

    fn alias_set(
        &mut self,
        native: &Native<'_>,
        at: &str,
        set_identifier: String,
        routing: Routing,
        target: Target,
    ) {
        let record_type = RecordType::from(native.record.record_type);
        let set = RecordSet {
            key: RecordKey::new(at, record_type, Some(set_identifier)),
            ttl: None,
            values: Vec::new(),
            alias: Some(AliasTarget {
                hosted_zone_id: String::new(),
                dns_name: target.name,
                // A calculated check decides the alias by itself (it is healthy only
                // while enough endpoints are); otherwise the target's health does.
                evaluate_target_health: target.check.is_none(),
            }),
            routing,
            health_check: target.check,
        };
        self.insert(native.zone, set, native.source.clone());
    }

    /// The calculated check standing for "the pool has `min_healthy` usable
    /// endpoints", None when the pool needs only one (Route 53's own evaluation of
    /// the alias target says as much) or cannot fall short of its minimum.
    fn pool_check(&mut self, pool: PoolIndex, health: &HealthSnapshot) -> Option<HealthCheckRef> {
        let config = self.config;
        let p = config.pool(pool);
        if p.min_healthy <= 1 {
            return None;
        }
        let mut children = Vec::new();
        let mut unchecked = 0u32;
        for &e in &p.endpoints {
            if self.drained(e, health) {
                continue;
            }
            match self.health_check(e, health) {
                Ok(Some(())) => children.push(HealthCheckRef::Key(config.endpoint_label(e))),
                _ => unchecked += 1,
            }
        }
        // Endpoints without a check are healthy to Route 53: they count by themselves.
        let mut threshold = p.min_healthy.saturating_sub(unchecked) as usize;
        if threshold == 0 || children.is_empty() {
            return None;
        }
        if children.len() > MAX_CHILD_CHECKS {
            self.warnings.insert(format!(
                "pool {:?}: {} endpoint checks exceed Route 53's {MAX_CHILD_CHECKS} children of \
                 a calculated check; min_healthy is not expressed",
                p.name,
                children.len()
            ));
            return None;
        }
        if threshold > children.len() {
            self.warnings.insert(format!(
                "pool {:?}: min_healthy {} is more than its {} usable endpoints; Route 53 \
                 treats the pool as up only while all of them are healthy",
                p.name,
                p.min_healthy,
                children.len() + unchecked as usize
            ));
            threshold = children.len();
        }
        let key = format!("pool:{}", p.name);
        let spec = HealthCheckSpec::calculated(threshold as u8, children);
        self.state.health_checks.insert(key.clone(), spec);
        Some(HealthCheckRef::Key(key))
    }

    /// Whether a native record can carry the dials of its pools: a weighted record
    /// can (its weights carry the shares); a failover record over several pools and a
    /// multivalue record cannot split traffic by a share.
    fn check_dials(
        &self,
        record: &DynamicRecord,
        pools: &[PoolIndex],
        health: &HealthSnapshot,
    ) -> Result<(), String> {
        let dialled = pools.iter().find_map(|&p| {
            health
                .dial(p)
                .filter(|d| *d != crate::health::overrides::Percent::FULL)
                .map(|d| (p, d))
        });
        let Some((pool, dial)) = dialled else {
            return Ok(());
        };
        let why = match record.selection {
            Selection::Weighted => return Ok(()),
            Selection::Failover | Selection::Primary if pools.len() == 1 => return Ok(()),
            Selection::Failover | Selection::Primary => {
                "a Route 53 failover record answers one pool at a time and cannot split traffic by a share"
            }
            Selection::Multivalue => {
                "Route 53 multivalue answers cannot answer a pool's endpoints in a share of the answers"
            }
        };
        let name = &self.config.pool(pool).name;
        Err(format!(
            "pool {name} is dialled to {dial} (ctl dial), and {why}; release the dial \
             (failoverd ctl release {name}) before applying, or use route53 = \"mirror\" \
             (Route 53 then answers what the servers answer)"
        ))
    }

    /// Per-pool weights (`raw`, for `pools`) with the dials of `health` applied as the
    /// servers answer ([`policy::spill::dialled`], weighted), scaled to whole numbers;
    /// None when no pool is dialled.
    fn dialled(
        &self,
        pools: &[PoolIndex],
        raw: &[u32],
        health: &HealthSnapshot,
    ) -> Option<Vec<u32>> {
        let dials: Vec<f64> = pools
            .iter()
            .map(|&p| {
                health
                    .dial(p)
                    .map_or(1.0, crate::health::overrides::Percent::ratio)
            })
            .collect();
        if dials.iter().all(|&d| d >= 1.0) {
            return None;
        }
        let normal: Vec<f64> = raw.iter().map(|&w| f64::from(w)).collect();
        let open: Vec<bool> = raw.iter().map(|&w| w > 0).collect();
        let shares =
            policy::spill::dialled(&normal, &dials, &open, policy::spill::Plain::Weighted)?;
        // Fine enough that 255-step scaling, not this, bounds the precision.
        Some(
            shares
                .iter()
                .map(|s| (s * 1_000_000.0).round() as u32)
                .collect(),
        )
    }

    /// Whether the endpoint takes no traffic: weight 0 in the config, or drained by
    /// an operator.
    fn drained(&self, endpoint: EndpointIndex, health: &HealthSnapshot) -> bool {
        self.config.endpoint(endpoint).weight.0 == 0 || health.drained(endpoint)
    }

    /// Every Route 53 health check of the pools' endpoints must be expressible
    /// (checked only: a check is registered when a record set uses it).
    fn check_endpoints(&mut self, pools: &[PoolIndex]) -> Result<(), String> {
        for endpoint in self.endpoints_of(pools) {
            let forced = self.config.endpoint(endpoint).forced;
            health_check_spec(self.config, endpoint, forced, &mut self.warnings)?;
        }
        Ok(())
    }

    fn endpoints_of(&self, pools: &[PoolIndex]) -> Vec<EndpointIndex> {
        let mut out: Vec<EndpointIndex> = Vec::new();
        let mut targets: Vec<&EndpointTarget> = Vec::new();
        for &pool in pools {
            for &e in &self.config.pool(pool).endpoints {
                let target = &self.config.endpoint(e).target;
                if !targets.contains(&target) {
                    targets.push(target);
                    out.push(e);
                }
            }
        }
        out
    }

    /// Adds one record set per endpoint at `name`, each with its health check.
    fn endpoint_sets(
        &mut self,
        native: &Native<'_>,
        name: &str,
        endpoints: &[EndpointIndex],
        style: SetStyle,
        health: &HealthSnapshot,
    ) {
        let config = self.config;
        let record = native.record;
        let record_type = RecordType::from(record.record_type);
        let zone_name = self.state.zones[native.zone].zone.clone();
        let raw_weights: Vec<u32> = endpoints
            .iter()
            .map(|&e| {
                let weight = if self.drained(e, health) {
                    0
                } else {
                    config.endpoint(e).weight.0
                };
                match style {
                    SetStyle::EqualWeights => u32::from(weight > 0),
                    _ => weight,
                }
            })
            .collect();
        // Dialled pools: each endpoint's weight carries its pool's dialled share.
        let raw_weights = if style == SetStyle::Weighted {
            let pools: Vec<PoolIndex> =
                endpoints.iter().map(|&e| config.endpoint(e).pool).collect();
            let mut distinct = pools.clone();
            distinct.dedup();
            let totals: Vec<u32> = distinct
                .iter()
                .map(|&p| {
                    pools
                        .iter()
                        .zip(&raw_weights)
                        .filter(|(q, _)| **q == p)
                        .map(|(_, w)| w)
                        .sum()
                })
                .collect();
            match self.dialled(&distinct, &totals, health) {
                Some(pool_weights) => pools
                    .iter()
                    .zip(&raw_weights)
                    .map(|(p, &w)| {
                        let i = distinct.iter().position(|d| d == p).unwrap_or(0);
                        if totals[i] == 0 {
                            0
                        } else {
                            (u64::from(pool_weights[i]) * u64::from(w) / u64::from(totals[i]))
                                as u32
                        }
                    })
                    .collect(),
                None => raw_weights,
            }
        } else {
            raw_weights
        };
        let weights = scale_weights(&raw_weights);
        let all_drained = raw_weights.iter().all(|&w| w == 0);
        for (i, &endpoint) in endpoints.iter().enumerate() {
            let routing = match style {
                SetStyle::Weighted | SetStyle::EqualWeights => {
                    Routing::Weighted { weight: weights[i] }
                }
                SetStyle::MultiValue if raw_weights[i] == 0 && !all_drained => continue,
                SetStyle::MultiValue => Routing::MultiValue,
            };
            // A drained endpoint (weight 0 while others carry weight) takes no traffic:
            // no health check of its own, billed and probing for nothing.
            let drained = raw_weights[i] == 0 && !all_drained;
            let health_check = if drained {
                None
            } else {
                match self.health_check(endpoint, health) {
                    Ok(Some(_)) => Some(HealthCheckRef::Key(config.endpoint_label(endpoint))),
                    _ => None,
                }
            };
            let label = config.endpoint_label(endpoint);
            let set = RecordSet {
                key: RecordKey::new(
                    name,
                    record_type.clone(),
                    Some(set_identifier(name, &zone_name, &record_type, &label)),
                ),
                ttl: Some(record.ttl.0),
                values: vec![target_value(&config.endpoint(endpoint).target)],
                alias: None,
                routing,
                health_check,
            };
            self.insert(native.zone, set, native.source.clone());
        }
    }

    /// The health check of an endpoint (registered in the desired state), None when
    /// the endpoint needs none. Its forced state (config or operator) is `health`'s.
    fn health_check(
        &mut self,
        endpoint: EndpointIndex,
        health: &HealthSnapshot,
    ) -> Result<Option<()>, String> {
        let config = self.config;
        let label = config.endpoint_label(endpoint);
        if self.state.health_checks.contains_key(&label) {
            return Ok(Some(()));
        }
        let forced = health
            .get(endpoint)
            .filter(|h| h.source == HealthSource::Forced)
            .map(|h| h.state);
        let spec = health_check_spec(config, endpoint, forced, &mut self.warnings)?;
        Ok(spec.map(|spec| {
            self.state.health_checks.insert(label, spec);
        }))
    }
}

/// Most children of one calculated health check.
const MAX_CHILD_CHECKS: usize = 256;
