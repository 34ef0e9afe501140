//! Deciding endpoint health from the verdicts of several vantage points (pure).
//!
//! - Only fresh reports count (received within `staleness`).
//! - A vantage point that calls every endpoint it probes down while another fresh
//!   vantage point sees at least half of them up is *partitioned*: its votes are
//!   ignored until it reports something up again.
//! - An endpoint goes down when `down_votes` (default: a majority of the fresh,
//!   unpartitioned voters) say so from at least `down_regions` distinct regions, and up
//!   when as many say up. Otherwise — including when nobody reports — it keeps its
//!   state: silence never flips an answer.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::Serialize;

use crate::model::{HealthState, RegionIndex};

/// Quorum settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rules {
    /// Votes needed either way (None: majority of fresh voters).
    pub down_votes: Option<u32>,
    /// Distinct regions among down votes.
    pub down_regions: u32,
    /// Age after which a report no longer counts.
    pub staleness: Duration,
}

/// The latest verdicts of one vantage point.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VantageView {
    /// Vantage name.
    pub name: String,
    /// Its region.
    pub region: Option<RegionIndex>,
    /// When its latest report arrived (monotonic).
    pub received_at: Duration,
    /// Verdict per endpoint (index into the config's endpoints); None = not probed.
    pub verdicts: Vec<Option<HealthState>>,
}

/// How the vantage points voted on one endpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Votes {
    /// Vantage points that see it up.
    pub up: Vec<String>,
    /// Vantage points that see it down.
    pub down: Vec<String>,
}

/// The outcome of a quorum round.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tally {
    /// Decided state per endpoint (`None`: no voter and no previous state).
    pub states: Vec<Option<HealthState>>,
    /// Votes per endpoint.
    pub votes: Vec<Votes>,
    /// Vantage points with fresh reports.
    pub fresh: BTreeSet<String>,
    /// Vantage points whose votes were ignored as partitioned.
    pub partitioned: BTreeSet<String>,
}

/// Decides every endpoint's state. `previous` is the state before this round (kept
/// when the votes do not decide).
pub fn tally(
    views: &[VantageView],
    previous: &[Option<HealthState>],
    endpoints: usize,
    rules: &Rules,
    now: Duration,
) -> Tally {
    let fresh: Vec<&VantageView> = views
        .iter()
        .filter(|v| now.saturating_sub(v.received_at) <= rules.staleness)
        .collect();
    let partitioned = partitioned(&fresh);
    let voters: Vec<&VantageView> = fresh
        .iter()
        .copied()
        .filter(|v| !partitioned.contains(&v.name))
        .collect();
    let mut states = Vec::with_capacity(endpoints);
    let mut all_votes = Vec::with_capacity(endpoints);
    for endpoint in 0..endpoints {
        let mut votes = Votes::default();
        let mut down_regions: BTreeSet<Option<RegionIndex>> = BTreeSet::new();
        for view in &voters {
            match view.verdicts.get(endpoint).copied().flatten() {
                Some(HealthState::Up) => votes.up.push(view.name.clone()),
                Some(HealthState::Down) => {
                    votes.down.push(view.name.clone());
                    down_regions.insert(view.region);
                }
                None => {}
            }
        }
        let voting = (votes.up.len() + votes.down.len()) as u32;
        let needed = rules.down_votes.unwrap_or(voting / 2 + 1).max(1);
        let before = previous.get(endpoint).copied().flatten();
        let state = if votes.down.len() as u32 >= needed
            && down_regions.len() as u32 >= rules.down_regions
        {
            Some(HealthState::Down)
        } else if votes.up.len() as u32 >= needed {
            Some(HealthState::Up)
        } else {
            before
        };
        states.push(state);
        all_votes.push(votes);
    }
    Tally {
        states,
        votes: all_votes,
        fresh: fresh.iter().map(|v| v.name.clone()).collect(),
        partitioned,
    }
}

/// Vantage points that report every probed endpoint down while another fresh vantage
/// point sees at least half of those endpoints up.
fn partitioned(fresh: &[&VantageView]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for view in fresh {
        let probed: Vec<usize> = view
            .verdicts
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.map(|_| i))
            .collect();
        let all_down = probed.len() >= 2
            && probed
                .iter()
                .all(|&i| view.verdicts[i] == Some(HealthState::Down));
        if !all_down {
            continue;
        }
        let contradicted = fresh.iter().any(|other| {
            other.name != view.name && {
                let up = probed
                    .iter()
                    .filter(|&&i| other.verdicts.get(i).copied().flatten() == Some(HealthState::Up))
                    .count();
                up * 2 >= probed.len()
            }
        });
        if contradicted {
            out.insert(view.name.clone());
        }
    }
    out
}

/// Summary of the votes for logs: `{"fra-1": "down", ...}`.
pub fn describe_votes(votes: &Votes) -> BTreeMap<String, &'static str> {
    votes
        .up
        .iter()
        .map(|v| (v.clone(), "up"))
        .chain(votes.down.iter().map(|v| (v.clone(), "down")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const UP: Option<HealthState> = Some(HealthState::Up);
    const DOWN: Option<HealthState> = Some(HealthState::Down);

    fn view(
        name: &str,
        region: u16,
        received_ms: u64,
        verdicts: &[Option<HealthState>],
    ) -> VantageView {
        VantageView {
            name: name.into(),
            region: Some(RegionIndex(region)),
            received_at: Duration::from_millis(received_ms),
            verdicts: verdicts.to_vec(),
        }
    }

    fn rules(down_votes: Option<u32>, down_regions: u32) -> Rules {
        Rules {
            down_votes,
            down_regions,
            staleness: Duration::from_secs(5),
        }
    }

    const NOW: Duration = Duration::from_secs(100);

    #[test]
    fn quorum_of_two_takes_an_endpoint_down() {
        let views = [
            view("a", 0, 99_000, &[DOWN, UP]),
            view("b", 1, 99_000, &[DOWN, UP]),
            view("c", 1, 99_000, &[UP, UP]),
        ];
        let t = tally(&views, &[UP, UP], 2, &rules(Some(2), 1), NOW);
        assert_eq!(t.states, [DOWN, UP]);
        assert_eq!(t.votes[0].down, ["a", "b"]);
    }

    #[test]
    fn one_vantage_cannot_fail_over_alone() {
        let views = [
            view("a", 0, 99_000, &[DOWN, UP]),
            view("b", 1, 99_000, &[UP, UP]),
            view("c", 1, 99_000, &[UP, UP]),
        ];
        assert_eq!(
            tally(&views, &[UP, UP], 2, &rules(Some(2), 1), NOW).states,
            [UP, UP]
        );
        assert_eq!(
            tally(&views, &[UP, UP], 2, &rules(None, 1), NOW).states,
            [UP, UP]
        );
    }

    #[test]
    fn a_vantage_calling_everything_down_is_partitioned_and_ignored() {
        let views = [
            view("a", 0, 99_000, &[DOWN, DOWN, DOWN]),
            view("b", 1, 99_000, &[UP, UP, DOWN]),
            view("c", 1, 99_000, &[UP, UP, DOWN]),
        ];
        let t = tally(&views, &[UP, UP, UP], 3, &rules(Some(2), 1), NOW);
        assert_eq!(t.partitioned.iter().collect::<Vec<_>>(), ["a"]);
        // c's real outage is still seen by b and c.
        assert_eq!(t.states, [UP, UP, DOWN]);
    }

    #[test]
    fn region_diversity_is_required_for_down() {
        let views = [
            view("a", 0, 99_000, &[DOWN]),
            view("b", 0, 99_000, &[DOWN]),
            view("c", 1, 99_000, &[UP]),
        ];
        assert_eq!(
            tally(&views, &[UP], 1, &rules(Some(2), 2), NOW).states,
            [UP]
        );
        let views = [
            view("a", 0, 99_000, &[DOWN]),
            view("b", 1, 99_000, &[DOWN]),
            view("c", 1, 99_000, &[UP]),
        ];
        assert_eq!(
            tally(&views, &[UP], 1, &rules(Some(2), 2), NOW).states,
            [DOWN]
        );
    }

    #[test]
    fn silence_and_stale_reports_keep_the_last_state() {
        let t = tally(&[], &[DOWN], 1, &rules(Some(2), 1), NOW);
        assert_eq!(t.states, [DOWN]);
        let stale = [view("a", 0, 10_000, &[UP]), view("b", 1, 10_000, &[UP])];
        let t = tally(&stale, &[DOWN], 1, &rules(Some(2), 1), NOW);
        assert_eq!(t.states, [DOWN]);
        assert!(t.fresh.is_empty());
        // Not enough fresh voters either way: unchanged.
        let one = [view("a", 0, 99_000, &[UP])];
        assert_eq!(
            tally(&one, &[DOWN], 1, &rules(Some(2), 1), NOW).states,
            [DOWN]
        );
        // Majority of the fresh voters by default.
        assert_eq!(tally(&one, &[DOWN], 1, &rules(None, 1), NOW).states, [UP]);
    }
}
