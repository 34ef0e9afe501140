//! Dial drills, the pure part: a pool's traffic dial is stepped through given
//! percentages (`failoverd drill RECORD --mode dial --pool POOL --steps 0,10,50,100`)
//! and at each step every nameserver is asked many times; the share of its answers
//! that come from the pool is measured against the share the servers computed
//! (`/v1/explain`). The runner (`failoverd drill`) sets the dials, asks and restores.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// One nameserver at one step.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct DialMeasure {
    /// `server IP:PORT`.
    pub server: String,
    /// Queries sent.
    pub queries: u32,
    /// Queries answered.
    pub answered: u32,
    /// Answers holding one of the pool's endpoints.
    pub from_pool: u32,
}

impl DialMeasure {
    /// The pool's measured share of the answers (None: nothing answered).
    pub(crate) fn share(&self) -> Option<f64> {
        (self.answered > 0).then(|| f64::from(self.from_pool) / f64::from(self.answered))
    }
}

/// One step of a dial drill.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct DialStep {
    /// The dial set (100: the dial released).
    pub percent: u8,
    /// The pool's share of the answers the servers computed (None: the record's
    /// explanation gives none, e.g. the pool is not considered).
    pub expected: Option<f64>,
    /// How long setting it on every server took (each confirms once its answers
    /// are swapped in), ms.
    pub set_ms: u64,
    /// Every nameserver's answers.
    pub servers: Vec<DialMeasure>,
}

/// A dial drill.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct DialRun {
    /// Record drilled.
    pub record: String,
    /// Record type.
    pub record_type: String,
    /// The pool dialled.
    pub pool: String,
    /// Largest |measured − expected| that passes (a fraction: 0.05 is 5 points).
    pub tolerance: f64,
    /// The steps, in order.
    pub steps: Vec<DialStep>,
}

/// The figures of a dial drill.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct DialFigures {
    /// Largest |measured − expected| over every step and server (points, 0–100).
    pub worst_points: Option<f64>,
    /// Every measured share is within the tolerance of the computed one (where one
    /// is computed), and every nameserver answered.
    pub within: bool,
}

impl DialRun {
    /// The worst deviation and whether the drill passes.
    pub(crate) fn figures(&self) -> DialFigures {
        let mut worst: Option<f64> = None;
        let mut within = !self.steps.is_empty();
        for step in &self.steps {
            for server in &step.servers {
                match (step.expected, server.share()) {
                    (Some(expected), Some(measured)) => {
                        let off = (measured - expected).abs();
                        worst = Some(worst.map_or(off, |w| w.max(off)));
                        within &= off <= self.tolerance + 1e-9;
                    }
                    // Nothing computed to judge by (the plain policy mixes pools).
                    (None, Some(_)) => {}
                    (_, None) => within = false,
                }
            }
        }
        DialFigures {
            worst_points: worst.map(|w| w * 100.0),
            within,
        }
    }

    /// The report in Markdown: one row per step and nameserver.
    pub(crate) fn markdown(&self) -> String {
        let f = self.figures();
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# Dial drill: {} {}, pool {}\n",
            self.record, self.record_type, self.pool
        );
        let _ = writeln!(
            out,
            "Each step sets pool {}'s dial on every server (100 %: the dial released) and \
             asks every nameserver; the pool's share of the answers is measured against the \
             share the servers computed (tolerance ±{} points).\n",
            self.pool,
            points(self.tolerance * 100.0)
        );
        let _ = writeln!(
            out,
            "| dial | set on every server | nameserver | computed | measured | answered |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|");
        for step in &self.steps {
            for server in &step.servers {
                let _ = writeln!(
                    out,
                    "| {} % | {} ms | {} | {} | {} | {}/{} |",
                    step.percent,
                    step.set_ms,
                    server.server,
                    step.expected
                        .map_or_else(|| "-".to_owned(), |e| format!("{} %", points(e * 100.0))),
                    server
                        .share()
                        .map_or_else(|| "-".to_owned(), |m| format!("{} %", points(m * 100.0))),
                    server.answered,
                    server.queries
                );
            }
        }
        let _ = writeln!(
            out,
            "\nWorst deviation: {}; {}.",
            f.worst_points
                .map_or_else(|| "-".to_owned(), |w| format!("{} points", points(w))),
            if f.within {
                "every share within the tolerance"
            } else {
                "NOT every share within the tolerance (or a nameserver did not answer)"
            }
        );
        out
    }
}

/// `12.3` (one decimal).
fn points(value: f64) -> String {
    format!("{value:.1}")
}

/// Parses `--steps`: whole percents from 0 to 100, comma-separated (`0,10,50,100`).
pub(crate) fn parse_steps(text: &str) -> Result<Vec<u8>, String> {
    let steps: Vec<u8> = text
        .split(',')
        .map(|s| {
            s.trim()
                .trim_end_matches('%')
                .parse::<u8>()
                .ok()
                .filter(|&p| p <= 100)
                .ok_or_else(|| {
                    format!("--steps: {s:?} is not a whole percent from 0 to 100 (e.g. --steps 0,10,50,100)")
                })
        })
        .collect::<Result<_, _>>()?;
    if steps.is_empty() {
        return Err("--steps: give at least one percent (e.g. --steps 0,10,50,100)".into());
    }
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measure(from_pool: u32, answered: u32) -> DialMeasure {
        DialMeasure {
            server: "server 127.0.0.1:53".into(),
            queries: answered,
            answered,
            from_pool,
        }
    }

    #[test]
    fn shares_are_judged_against_the_computed_ones() {
        let mut run = DialRun {
            record: "www.example.".into(),
            record_type: "A".into(),
            pool: "eu".into(),
            tolerance: 0.05,
            steps: vec![
                DialStep {
                    percent: 10,
                    expected: Some(0.1),
                    set_ms: 12,
                    servers: vec![measure(120, 1000)],
                },
                DialStep {
                    percent: 50,
                    expected: Some(0.5),
                    set_ms: 9,
                    servers: vec![measure(470, 1000)],
                },
            ],
        };
        let f = run.figures();
        assert!(f.within);
        assert!((f.worst_points.unwrap() - 3.0).abs() < 1e-9);
        let text = run.markdown();
        assert!(
            text.contains("| 10 % | 12 ms | server 127.0.0.1:53 | 10.0 % | 12.0 % | 1000/1000 |"),
            "{text}"
        );
        run.steps[1].servers[0] = measure(400, 1000);
        assert!(!run.figures().within);
        run.steps[1].servers[0] = measure(0, 0);
        assert!(!run.figures().within, "a silent nameserver fails the drill");
    }

    #[test]
    fn steps_are_whole_percents() {
        assert_eq!(parse_steps("0,10, 50,100%"), Ok(vec![0, 10, 50, 100]));
        for bad in ["", "10,abc", "101", "-1"] {
            assert!(parse_steps(bad).is_err(), "{bad}");
        }
    }
}
