//! Failover drills, the pure part: from the answers every server (and a caching
//! resolver) gave while an endpoint was taken out and put back, the figures — time to
//! detection, until every server answers without it, until the resolver does, and the
//! same for recovery — and the report (Markdown, JSON, an SVG timeline). The runner
//! (`failoverd drill`) only breaks, polls and restores.
//!
//! A promote drill (`--mode promote`) is one-way: an operator's command promotes a
//! database node (Patroni, `pg_ctl promote`, a cloud API), and the figures are the
//! time from the command to the first server, every server and the resolver answering
//! the new primary ([`DrillRun::promotion_figures`]).
//!
//! A dial drill (`--mode dial`, [`dial`]) steps a pool's traffic dial through given
//! percentages and measures each nameserver's share of answers from the pool.
//!
//! The runner polls while each action runs, from its start: the figures are times
//! from the start of the break, restore or promote action, and the run records when
//! each action returned (a command may return long after its effect took hold).

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

pub(crate) mod dial;

/// One poll of one server: when (ms since the drill began) and whether the answer
/// held the endpoint (None: no answer, e.g. a timeout).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Sample {
    /// Milliseconds since the drill began.
    pub at_ms: u64,
    /// Whether the endpoint was in the answer.
    pub present: Option<bool>,
}

/// The answers of one server (or the resolver) over the drill.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Track {
    /// `DNS address` of a server, or `resolver ADDRESS`.
    pub name: String,
    /// Whether this is the caching resolver (its delay is bounded by the TTL).
    pub resolver: bool,
    /// Polls, in time order.
    pub samples: Vec<Sample>,
}

impl Track {
    /// The first poll at or after `from_ms` (and before `to_ms`) whose answer was
    /// `present`, if any, and stayed so until `to_ms` (so a flicker does not count).
    pub(crate) fn settled(&self, from_ms: u64, to_ms: u64, present: bool) -> Option<u64> {
        let window: Vec<&Sample> = self
            .samples
            .iter()
            .filter(|s| s.at_ms >= from_ms && s.at_ms < to_ms)
            .collect();
        let last_other = window
            .iter()
            .rposition(|s| s.present != Some(present))
            .map_or(0, |i| i + 1);
        window.get(last_other).map(|s| s.at_ms)
    }
}

/// What was done when.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct DrillRun {
    /// Record drilled.
    pub record: String,
    /// Record type.
    pub record_type: String,
    /// `POOL/NAME`.
    pub endpoint: String,
    /// The endpoint's address (what the answers are checked for).
    pub target: String,
    /// `force`, `command` or `promote`.
    pub mode: String,
    /// The record's TTL (resolvers may keep the old answer that long).
    pub ttl: u32,
    /// When the endpoint was taken out (ms since the drill began).
    pub broken_at_ms: u64,
    /// When it was put back.
    pub restored_at_ms: u64,
    /// When polling ended.
    pub ended_at_ms: u64,
    /// When the action taking the endpoint out (the force calls, the break command)
    /// or the promote command returned (None: not recorded).
    #[serde(default)]
    pub break_ended_at_ms: Option<u64>,
    /// When the action putting it back (the release calls, the restore command)
    /// returned.
    #[serde(default)]
    pub restore_ended_at_ms: Option<u64>,
    /// Every server's and the resolver's answers.
    pub tracks: Vec<Track>,
    /// Wall clock of the start (Unix ms).
    pub started_unix_ms: u64,
}

/// The drill's figures (ms from the break or the restore; None: not within the drill).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Figures {
    /// Break → the first server answers without the endpoint.
    pub detection_ms: Option<u64>,
    /// Break → every server answers without it.
    pub all_servers_out_ms: Option<u64>,
    /// Break → the resolver answers without it.
    pub resolver_out_ms: Option<u64>,
    /// Restore → the first server answers with it again.
    pub recovery_detection_ms: Option<u64>,
    /// Restore → every server answers with it.
    pub all_servers_back_ms: Option<u64>,
    /// Restore → the resolver answers with it.
    pub resolver_back_ms: Option<u64>,
    /// Break → the break action returned (the servers were polled while it ran).
    pub break_returned_ms: Option<u64>,
    /// Restore → the restore action returned.
    pub restore_returned_ms: Option<u64>,
    /// Polls that got no answer.
    pub unanswered: usize,
}

/// The figures of a promote drill (ms from the promote command; None: not seen).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PromotionFigures {
    /// Promote → the first server answers the new primary.
    pub first_server_ms: Option<u64>,
    /// Promote → every server answers it.
    pub all_servers_ms: Option<u64>,
    /// Promote → the resolver answers it.
    pub resolver_ms: Option<u64>,
    /// Promote → the promote command returned (the servers were polled while it
    /// ran, so this may come well after `all_servers_ms`).
    pub command_returned_ms: Option<u64>,
    /// Polls that got no answer.
    pub unanswered: usize,
}

impl DrillRun {
    /// Whether this is a promote drill.
    pub(crate) fn is_promotion(&self) -> bool {
        self.mode == "promote"
    }

    /// The figures of a promote drill: from the command (`broken_at_ms`) until each
    /// track answers the new primary (`target`) and keeps answering it.
    pub(crate) fn promotion_figures(&self) -> PromotionFigures {
        let from = self.broken_at_ms;
        let to = self.ended_at_ms + 1;
        let each: Vec<Option<u64>> = self
            .tracks
            .iter()
            .filter(|t| !t.resolver)
            .map(|t| t.settled(from, to, true))
            .collect();
        PromotionFigures {
            first_server_ms: each.iter().flatten().min().map(|at| at - from),
            all_servers_ms: if each.iter().all(Option::is_some) {
                each.iter().flatten().max().map(|at| at - from)
            } else {
                None
            },
            resolver_ms: self
                .tracks
                .iter()
                .find(|t| t.resolver)
                .and_then(|t| t.settled(from, to, true))
                .map(|at| at - from),
            command_returned_ms: self.break_ended_at_ms.map(|at| at.saturating_sub(from)),
            unanswered: self
                .tracks
                .iter()
                .flat_map(|t| &t.samples)
                .filter(|s| s.present.is_none())
                .count(),
        }
    }

    /// "2", or "2 and a caching resolver": what the drill watched.
    fn servers_watched(&self) -> String {
        let servers = self.tracks.iter().filter(|t| !t.resolver).count();
        if self.tracks.iter().any(|t| t.resolver) {
            format!("{servers} and a caching resolver")
        } else {
            servers.to_string()
        }
    }

    /// The report of a promote drill in Markdown.
    fn promotion_markdown(&self) -> String {
        let f = self.promotion_figures();
        let ms = seconds;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# Drill: {} {} follows the promotion of {}\n",
            self.record, self.record_type, self.endpoint
        );
        let _ = writeln!(
            out,
            "Mode `promote`; new primary {} ({}); record TTL {} s; servers: {}.\n",
            self.endpoint,
            self.target,
            self.ttl,
            self.servers_watched()
        );
        if let Some(returned) = f.command_returned_ms {
            let _ = writeln!(
                out,
                "Times are from the start of the promote command; every server was polled \
                 while it ran. The command returned after {}.\n",
                ms(Some(returned))
            );
        }
        let _ = writeln!(out, "| | promote command → answers the new primary |");
        let _ = writeln!(out, "|---|---|");
        let _ = writeln!(out, "| first server | {} |", ms(f.first_server_ms));
        let _ = writeln!(out, "| every server | {} |", ms(f.all_servers_ms));
        if self.tracks.iter().any(|t| t.resolver) {
            let _ = writeln!(
                out,
                "| resolver (≤ TTL {} s later) | {} |",
                self.ttl,
                ms(f.resolver_ms)
            );
        }
        let _ = writeln!(
            out,
            "\nPolls without an answer: {}.\n\n![timeline](timeline.svg)",
            f.unanswered
        );
        out
    }

    /// Computes the figures.
    pub(crate) fn figures(&self) -> Figures {
        let servers: Vec<&Track> = self.tracks.iter().filter(|t| !t.resolver).collect();
        let resolver = self.tracks.iter().find(|t| t.resolver);
        let phase = |from: u64, to: u64, present: bool| -> (Option<u64>, Option<u64>) {
            let each: Vec<Option<u64>> = servers
                .iter()
                .map(|t| t.settled(from, to, present))
                .collect();
            let first = each.iter().flatten().min().map(|at| at - from);
            let all = if each.iter().all(Option::is_some) {
                each.iter().flatten().max().map(|at| at - from)
            } else {
                None
            };
            (first, all)
        };
        let (detection, all_out) = phase(self.broken_at_ms, self.restored_at_ms, false);
        let (recovery, all_back) = phase(self.restored_at_ms, self.ended_at_ms + 1, true);
        Figures {
            detection_ms: detection,
            all_servers_out_ms: all_out,
            resolver_out_ms: resolver
                .and_then(|t| t.settled(self.broken_at_ms, self.restored_at_ms, false))
                .map(|at| at - self.broken_at_ms),
            recovery_detection_ms: recovery,
            all_servers_back_ms: all_back,
            resolver_back_ms: resolver
                .and_then(|t| t.settled(self.restored_at_ms, self.ended_at_ms + 1, true))
                .map(|at| at - self.restored_at_ms),
            break_returned_ms: self
                .break_ended_at_ms
                .map(|at| at.saturating_sub(self.broken_at_ms)),
            restore_returned_ms: self
                .restore_ended_at_ms
                .map(|at| at.saturating_sub(self.restored_at_ms)),
            unanswered: self
                .tracks
                .iter()
                .flat_map(|t| &t.samples)
                .filter(|s| s.present.is_none())
                .count(),
        }
    }

    /// The report in Markdown (the SVG is referenced as `timeline.svg`).
    pub(crate) fn markdown(&self) -> String {
        if self.is_promotion() {
            return self.promotion_markdown();
        }
        let f = self.figures();
        let ms = seconds;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# Drill: {} {} without {}\n",
            self.record, self.record_type, self.endpoint
        );
        let _ = writeln!(
            out,
            "Mode `{}`; endpoint {} ({}); record TTL {} s; servers: {}.\n",
            self.mode,
            self.endpoint,
            self.target,
            self.ttl,
            self.servers_watched()
        );
        if f.break_returned_ms.is_some() || f.restore_returned_ms.is_some() {
            let (taking, putting) = if self.mode == "force" {
                ("force_down calls", "release calls")
            } else {
                ("break command", "restore command")
            };
            let _ = writeln!(
                out,
                "Times are from the start of the {taking} and of the {putting}; every \
                 server was polled while they ran. The {taking} returned after {}, the \
                 {putting} after {}.\n",
                ms(f.break_returned_ms),
                ms(f.restore_returned_ms)
            );
        }
        let _ = writeln!(
            out,
            "| | taken out (MTTD and spread) | put back (MTTR and spread) |"
        );
        let _ = writeln!(out, "|---|---|---|");
        let _ = writeln!(
            out,
            "| first server | {} | {} |",
            ms(f.detection_ms),
            ms(f.recovery_detection_ms)
        );
        let _ = writeln!(
            out,
            "| every server | {} | {} |",
            ms(f.all_servers_out_ms),
            ms(f.all_servers_back_ms)
        );
        if self.tracks.iter().any(|t| t.resolver) {
            let _ = writeln!(
                out,
                "| resolver (≤ TTL {} s later) | {} | {} |",
                self.ttl,
                ms(f.resolver_out_ms),
                ms(f.resolver_back_ms)
            );
        }
        let _ = writeln!(
            out,
            "\nPolls without an answer: {}.\n\n![timeline](timeline.svg)",
            f.unanswered
        );
        out
    }

    /// An SVG timeline: one row per server (and the resolver); green while the
    /// endpoint is in the answer, amber while it is not, grey without an answer.
    pub(crate) fn svg(&self) -> String {
        let (left, width, row, top) = (170.0, 760.0, 26.0, 40.0);
        let end = self.ended_at_ms.max(1) as f64;
        let x = |ms: u64| left + ms as f64 / end * width;
        // Room below the rows for the marks, the legend and when actions returned.
        let height = top + row * self.tracks.len() as f64 + 78.0;
        let mut out = String::new();
        let _ = writeln!(
            out,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{height}" font-family="sans-serif" font-size="12">"#,
            w = left + width + 20.0
        );
        let _ = writeln!(
            out,
            r#"<text x="10" y="20" font-weight="bold">{} {} {} {}</text>"#,
            xml(&self.record),
            self.record_type,
            if self.is_promotion() {
                "follows the promotion of"
            } else {
                "without"
            },
            xml(&self.endpoint)
        );
        for (i, track) in self.tracks.iter().enumerate() {
            let y = top + row * i as f64;
            let _ = writeln!(
                out,
                r#"<text x="10" y="{}">{}</text>"#,
                y + 15.0,
                xml(&track.name)
            );
            for (j, sample) in track.samples.iter().enumerate() {
                let next = track
                    .samples
                    .get(j + 1)
                    .map_or(self.ended_at_ms, |s| s.at_ms);
                let colour = match sample.present {
                    Some(true) => "#2da44e",
                    Some(false) => "#d4a72c",
                    None => "#8c959f",
                };
                let _ = writeln!(
                    out,
                    r#"<rect x="{:.1}" y="{y}" width="{:.1}" height="18" fill="{colour}"/>"#,
                    x(sample.at_ms),
                    (x(next) - x(sample.at_ms)).max(0.5)
                );
            }
        }
        let bottom = top + row * self.tracks.len() as f64;
        let marks: &[(u64, &str)] = if self.is_promotion() {
            &[(self.broken_at_ms, "promoted")]
        } else {
            &[
                (self.broken_at_ms, "taken out"),
                (self.restored_at_ms, "put back"),
            ]
        };
        let (out_label, back_label) = match self.mode.as_str() {
            "promote" => ("promote command returned", ""),
            "force" => ("force_down calls returned", "release calls returned"),
            _ => ("break command returned", "restore command returned"),
        };
        let returned: Vec<(u64, &str)> = [
            (self.break_ended_at_ms, out_label),
            (self.restore_ended_at_ms, back_label),
        ]
        .into_iter()
        .filter_map(|(at, label)| Some((at?, label)))
        .collect();
        for (i, &(at, label)) in returned.iter().enumerate() {
            let _ = writeln!(
                out,
                r##"<line x1="{0:.1}" y1="{1}" x2="{0:.1}" y2="{2}" stroke="#6e7781" stroke-width="1" stroke-dasharray="4 3"/><text x="{3:.1}" y="{4}" fill="#6e7781">{label} at {5:.2} s</text>"##,
                x(at),
                top - 8.0,
                bottom,
                x(at) + 4.0,
                bottom + 50.0 + 14.0 * i as f64,
                at as f64 / 1000.0
            );
        }
        for &(at, label) in marks {
            let _ = writeln!(
                out,
                r##"<line x1="{0:.1}" y1="{1}" x2="{0:.1}" y2="{2}" stroke="#cf222e" stroke-width="2"/><text x="{3:.1}" y="{4}" fill="#cf222e">{label} at {5:.1} s</text>"##,
                x(at),
                top - 8.0,
                bottom,
                x(at) + 4.0,
                bottom + 16.0,
                at as f64 / 1000.0
            );
        }
        let _ = writeln!(
            out,
            r##"<text x="{left}" y="{}" fill="#57606a">green: answered with the endpoint · amber: without it · grey: no answer · {:.1} s in all</text>"##,
            bottom + 34.0,
            end / 1000.0
        );
        out.push_str("</svg>\n");
        out
    }
}

fn xml(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Milliseconds as "1.23 s", or "not seen".
fn seconds(v: Option<u64>) -> String {
    v.map_or_else(
        || "not seen".to_owned(),
        |v| format!("{:.2} s", v as f64 / 1000.0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn track(name: &str, resolver: bool, present: &[(u64, bool)]) -> Track {
        Track {
            name: name.into(),
            resolver,
            samples: present
                .iter()
                .map(|&(at_ms, p)| Sample {
                    at_ms,
                    present: Some(p),
                })
                .collect(),
        }
    }

    #[test]
    fn figures_follow_the_answers() {
        let run = DrillRun {
            broken_at_ms: 1000,
            restored_at_ms: 5000,
            ended_at_ms: 9000,
            tracks: vec![
                track(
                    "s1",
                    false,
                    &[
                        (0, true),
                        (1100, true),
                        (1300, false),
                        (5000, false),
                        (5200, true),
                    ],
                ),
                track(
                    "s2",
                    false,
                    &[
                        (0, true),
                        (1400, true),
                        (1500, false),
                        (5000, false),
                        (5600, true),
                    ],
                ),
                // A flicker back does not count: settled only at 2500.
                track(
                    "r",
                    true,
                    &[
                        (0, true),
                        (2000, false),
                        (2200, true),
                        (2500, false),
                        (5000, false),
                        (7000, true),
                    ],
                ),
            ],
            ..DrillRun::default()
        };
        let f = run.figures();
        assert_eq!(f.detection_ms, Some(300));
        assert_eq!(f.all_servers_out_ms, Some(500));
        assert_eq!(f.resolver_out_ms, Some(1500));
        assert_eq!(f.recovery_detection_ms, Some(200));
        assert_eq!(f.all_servers_back_ms, Some(600));
        assert_eq!(f.resolver_back_ms, Some(2000));
        assert!(
            run.markdown()
                .contains("| every server | 0.50 s | 0.60 s |")
        );
        let svg = run.svg();
        assert!(svg.starts_with("<svg") && svg.contains("taken out at 1.0 s"));
        assert_eq!((f.break_returned_ms, f.restore_returned_ms), (None, None));
        let timed = DrillRun {
            mode: "command".into(),
            break_ended_at_ms: Some(3000),
            restore_ended_at_ms: Some(5100),
            ..run
        };
        let f = timed.figures();
        assert_eq!(f.detection_ms, Some(300), "still from the break's start");
        assert_eq!(
            (f.break_returned_ms, f.restore_returned_ms),
            (Some(2000), Some(100))
        );
        assert!(timed.markdown().contains(
            "The break command returned after 2.00 s, the restore command after 0.10 s."
        ));
        assert!(timed.svg().contains("break command returned at 3.00 s"));
    }

    #[test]
    fn a_promote_drill_times_the_new_primary_at_every_server() {
        let run = DrillRun {
            mode: "promote".into(),
            broken_at_ms: 100,
            restored_at_ms: 900,
            ended_at_ms: 900,
            tracks: vec![
                track(
                    "server a",
                    false,
                    &[(0, false), (200, false), (300, true), (800, true)],
                ),
                // A flicker back to the old primary does not count.
                track(
                    "server b",
                    false,
                    &[
                        (0, false),
                        (300, true),
                        (400, false),
                        (500, true),
                        (800, true),
                    ],
                ),
                track("resolver", true, &[(0, false), (700, true), (800, true)]),
            ],
            ..DrillRun::default()
        };
        let f = run.promotion_figures();
        assert_eq!(f.first_server_ms, Some(200));
        assert_eq!(f.all_servers_ms, Some(400));
        assert_eq!(f.resolver_ms, Some(600));
        assert_eq!(f.command_returned_ms, None);
        assert!(run.markdown().contains("| every server | 0.40 s |"));
        assert!(run.svg().contains("promoted at 0.1 s"));
        // A command that returns after its effect: the figures are the effect's, and
        // the report says when the command returned.
        let late = DrillRun {
            break_ended_at_ms: Some(850),
            ..run
        };
        let f = late.promotion_figures();
        assert_eq!(f.all_servers_ms, Some(400));
        assert_eq!(f.command_returned_ms, Some(750));
        assert!(
            late.markdown()
                .contains("The command returned after 0.75 s."),
            "{}",
            late.markdown()
        );
        assert!(late.svg().contains("promote command returned at 0.85 s"));
    }

    #[test]
    fn a_server_that_never_changes_leaves_every_server_unmeasured() {
        let run = DrillRun {
            broken_at_ms: 0,
            restored_at_ms: 1000,
            ended_at_ms: 2000,
            tracks: vec![
                track("s1", false, &[(0, true), (500, false), (1000, true)]),
                track("s2", false, &[(0, true), (500, true), (1000, true)]),
            ],
            ..DrillRun::default()
        };
        let f = run.figures();
        assert_eq!(f.detection_ms, Some(500));
        assert_eq!(f.all_servers_out_ms, None);
    }
}
