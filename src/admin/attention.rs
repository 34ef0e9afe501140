//! What needs attention on a server, in words (pure): the status page's header and
//! the first lines of `ctl status`, from its status alone.

use crate::api::{Notice, NoticeLevel, Status};
use crate::health::overrides::Entry;
use crate::logs::Escaped;
use crate::model::HealthState;
use crate::policy::FailoverCause;

/// Most names listed in one notice (the rest are counted).
const MOST_NAMED: usize = 5;

/// Everything in `status` that needs attention at `now_ms`, most severe first.
pub(crate) fn notices(status: &Status, now_ms: u64) -> Vec<Notice> {
    let mut out = Vec::new();
    let mut say = |level, kind: &str, text: String| {
        out.push(Notice {
            level,
            kind: kind.to_owned(),
            text,
        })
    };
    if !status.ready {
        say(
            NoticeLevel::Critical,
            "not_ready",
            "this server is starting: no health decision yet (/readyz fails)".to_owned(),
        );
    }
    if let Some(error) = &status.state_file.error {
        say(
            NoticeLevel::Critical,
            "state_file",
            format!(
                "the state file cannot be written, so overrides are refused and /readyz fails: {}",
                Escaped(error)
            ),
        );
    }
    if let Some(isolation) = status.isolation.as_ref().filter(|i| i.isolated) {
        say(
            NoticeLevel::Critical,
            "isolated",
            format!(
                "isolated: hears {} of the {} vantage points a decision needs ({}); {}",
                isolation.fresh.len(),
                isolation.needed,
                if isolation.missing.is_empty() {
                    "none missing".to_owned()
                } else {
                    format!("missing {}", isolation.missing.join(", "))
                },
                if isolation.mode == "local" {
                    "the vantage points still heard decide"
                } else {
                    "every endpoint keeps its last decided state"
                }
            ),
        );
    }
    let answers = |outcome: &str, cause: Option<FailoverCause>| -> Vec<String> {
        let mut names = Vec::new();
        for record in &status.records {
            for answer in &record.answers {
                if answer.outcome == outcome && (cause.is_none() || answer.cause == cause) {
                    let pool = answer
                        .pool
                        .as_deref()
                        .map(|p| format!(" → {p}"))
                        .unwrap_or_default();
                    let regions = if answer.regions.is_empty() {
                        String::new()
                    } else {
                        format!(" [{}]", answer.regions.join(","))
                    };
                    names.push(format!(
                        "{} {}{regions}{pool}",
                        record.name, record.record_type
                    ));
                }
            }
        }
        names
    };
    let fail_open = answers("fail-open", None);
    if !fail_open.is_empty() {
        say(
            NoticeLevel::Critical,
            "fail_open",
            format!(
                "fail-open (nothing up: every endpoint answered as if healthy): {}",
                listed(&fail_open)
            ),
        );
    }
    let mut all_down = answers("fallback", None);
    all_down.extend(answers("nodata", None));
    if !all_down.is_empty() {
        say(
            NoticeLevel::Critical,
            "all_down",
            format!(
                "all down (answering the fallback pool or nothing): {}",
                listed(&all_down)
            ),
        );
    }
    let conflict = answers("conflict", None);
    if !conflict.is_empty() {
        say(
            NoticeLevel::Critical,
            "conflict",
            format!(
                "split brain (two endpoints claim primary): {}",
                listed(&conflict)
            ),
        );
    }
    if status.vantages.iter().any(|v| v.impaired) {
        say(
            NoticeLevel::Warning,
            "impaired",
            "this server's own probes fail for a local fault: they abstain, and its verdicts go stale"
                .to_owned(),
        );
    }
    let by_health = answers("failover", Some(FailoverCause::Health));
    if !by_health.is_empty() {
        say(
            NoticeLevel::Warning,
            "failover",
            format!(
                "failover (health: the first pool is down): {}",
                listed(&by_health)
            ),
        );
    }
    let degraded = answers("degraded", None);
    if !degraded.is_empty() {
        say(
            NoticeLevel::Warning,
            "degraded",
            format!(
                "degraded (no pool has enough healthy endpoints): {}",
                listed(&degraded)
            ),
        );
    }
    let by_operator = answers("failover", Some(FailoverCause::Operator));
    if !by_operator.is_empty() {
        say(
            NoticeLevel::Warning,
            "failover_operator",
            format!("failover (operator): {}", listed(&by_operator)),
        );
    }
    let down: Vec<String> = status
        .endpoints
        .iter()
        .filter(|e| e.state == HealthState::Down)
        .map(|e| e.endpoint.clone())
        .collect();
    if !down.is_empty() {
        say(
            NoticeLevel::Warning,
            "down",
            format!(
                "{} endpoint{} down: {}",
                down.len(),
                if down.len() == 1 { "" } else { "s" },
                listed(&down)
            ),
        );
    }
    if let Some(reload) = status.last_reload.as_ref().filter(|r| !r.ok) {
        say(
            NoticeLevel::Warning,
            "reload",
            format!(
                "the last reload was refused; the running configuration stays: {}",
                Escaped(&reload.errors.first().cloned().unwrap_or_default())
            ),
        );
    }
    let limit = status.override_warn_after_ms;
    let (old, recent): (Vec<&Entry>, Vec<&Entry>) = status
        .overrides
        .iter()
        .partition(|e| limit > 0 && now_ms.saturating_sub(e.at_ms) > limit);
    if !old.is_empty() {
        let named: Vec<String> = old
            .iter()
            .map(|e| {
                format!(
                    "{}, for {}",
                    describe(e),
                    duration_words(now_ms.saturating_sub(e.at_ms))
                )
            })
            .collect();
        say(
            NoticeLevel::Warning,
            "override_old",
            format!(
                "override{} in force longer than {} (override_warn_after): {}",
                if old.len() == 1 { "" } else { "s" },
                duration_words(limit),
                listed(&named)
            ),
        );
    }
    if !recent.is_empty() {
        let named: Vec<String> = recent.iter().map(|e| describe(e)).collect();
        say(
            NoticeLevel::Info,
            "override",
            format!(
                "{} override{} in force: {}",
                recent.len(),
                if recent.len() == 1 { "" } else { "s" },
                listed(&named)
            ),
        );
    }
    out.sort_by_key(|n| std::cmp::Reverse(n.level));
    out
}

/// `endpoint eu/web-1: drain by oncall`.
fn describe(entry: &Entry) -> String {
    let action = entry
        .action
        .as_ref()
        .map_or_else(|| "release".to_owned(), ToString::to_string);
    format!(
        "{}: {} by {}",
        Escaped(&entry.target),
        Escaped(&action),
        Escaped(&entry.by)
    )
}

/// The first few names, and how many more.
fn listed(names: &[String]) -> String {
    let mut text = names
        .iter()
        .take(MOST_NAMED)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > MOST_NAMED {
        text.push_str(&format!(" and {} more", names.len() - MOST_NAMED));
    }
    text
}

/// A length of time for people, rounded to what matters: `45s`, `12m`, `2h`,
/// `3h 20m`, `2d 4h` (to the nearest second below two minutes, minute below two
/// days, hour beyond).
pub(crate) fn duration_words(ms: u64) -> String {
    let secs = (ms + 500) / 1000;
    if secs < 120 {
        return format!("{secs}s");
    }
    let minutes = (secs + 30) / 60;
    if minutes < 48 * 60 {
        let (h, m) = (minutes / 60, minutes % 60);
        return match (h, m) {
            (0, m) => format!("{m}m"),
            (h, 0) => format!("{h}h"),
            (h, m) => format!("{h}h {m}m"),
        };
    }
    let hours = (minutes + 30) / 60;
    match (hours / 24, hours % 24) {
        (d, 0) => format!("{d}d"),
        (d, h) => format!("{d}d {h}h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{AnswerStatus, IsolationStatus, RecordStatus};
    use crate::health::overrides::{Action, Stamp, Target};

    #[test]
    fn durations_round_to_what_matters() {
        let cases = [
            (0, "0s"),
            (1_499, "1s"),
            (119_000, "119s"),
            (119_600, "2m"),
            // Just under 2 h and 4 h (an expiry seen a moment after it was set).
            (2 * 3_600_000 - 40, "2h"),
            (4 * 3_600_000 - 900, "4h"),
            (90 * 60_000, "1h 30m"),
            (47 * 3_600_000 + 59 * 60_000, "47h 59m"),
            (50 * 3_600_000, "2d 2h"),
            (72 * 3_600_000 - 1_000, "3d"),
        ];
        for (ms, words) in cases {
            assert_eq!(duration_words(ms), words, "{ms} ms");
        }
    }

    fn entry(at_ms: u64) -> Entry {
        Entry {
            target: Target::Endpoint("eu/web-1".into()),
            action: Some(Action::Drain),
            by: "oncall".into(),
            reason: "kernel".into(),
            at_ms,
            expires_at_ms: None,
            stamp: Stamp::default(),
        }
    }

    fn answer(outcome: &str, cause: Option<FailoverCause>, pool: Option<&str>) -> RecordStatus {
        RecordStatus {
            name: "www.example.".into(),
            record_type: "A".into(),
            answers: vec![AnswerStatus {
                regions: Vec::new(),
                pools: vec!["eu".into(), "us".into()],
                outcome: outcome.into(),
                cause,
                pinned: None,
                pool: pool.map(Into::into),
                held_by_gate: Vec::new(),
                ttl: 5,
                candidates: Vec::new(),
                shares: None,
                overloaded: false,
            }],
        }
    }

    #[test]
    fn says_what_is_wrong_most_severe_first() {
        let hour = 3_600_000;
        let mut status = Status {
            ready: true,
            override_warn_after_ms: 4 * hour,
            ..Status::default()
        };
        assert!(notices(&status, 10 * hour).is_empty(), "all well: nothing");
        status.records = vec![answer(
            "failover",
            Some(FailoverCause::Operator),
            Some("us"),
        )];
        status.overrides = vec![entry(9 * hour)];
        let said = notices(&status, 10 * hour);
        let kinds: Vec<&str> = said.iter().map(|n| n.kind.as_str()).collect();
        assert_eq!(kinds, ["failover_operator", "override"]);
        assert_eq!(said[0].text, "failover (operator): www.example. A → us");
        assert_eq!(
            said[1].text,
            "1 override in force: endpoint eu/web-1: drain by oncall"
        );
        // Five hours later it is old: a warning, with how long.
        let said = notices(&status, 14 * hour);
        assert_eq!(said[1].kind, "override_old");
        assert_eq!(
            said[1].text,
            "override in force longer than 4h (override_warn_after): endpoint eu/web-1: drain by oncall, for 5h"
        );
        status.records.push(answer("fail-open", None, None));
        status.isolation = Some(IsolationStatus {
            isolated: true,
            mode: "hold".into(),
            needed: 2,
            fresh: vec!["s1".into()],
            missing: vec!["s2".into(), "s3".into()],
        });
        let said = notices(&status, 14 * hour);
        let levels: Vec<NoticeLevel> = said.iter().map(|n| n.level).collect();
        assert_eq!(
            levels,
            [
                NoticeLevel::Critical,
                NoticeLevel::Critical,
                NoticeLevel::Warning,
                NoticeLevel::Warning
            ]
        );
        assert_eq!(
            said[0].text,
            "isolated: hears 1 of the 2 vantage points a decision needs (missing s2, s3); every endpoint keeps its last decided state"
        );
        assert_eq!(
            said[1].text,
            "fail-open (nothing up: every endpoint answered as if healthy): www.example. A"
        );
    }
}
