//! Deciding endpoint health from the verdicts of several vantage points (pure).
//!
//! - The board hands in only *fresh* ballots: verdicts observed within `staleness`.
//! - A vantage point that calls every endpoint it probes down while another fresh
//!   vantage point sees at least half of them up is *partitioned*: its votes are
//!   ignored until it reports something up again.
//! - Votes are counted against the vantage points the **config names**, not the ones
//!   that happen to be heard: an endpoint goes down when `down_votes` (default: a
//!   majority of the configured vantage points) say so from at least `down_regions`
//!   distinct regions, and up when as many say up. Otherwise it keeps its state:
//!   silence never flips an answer.
//! - A server that hears fewer usable voters than `down_votes` (itself included) is
//!   **isolated**. With [`IsolationMode::Hold`] (the default) every endpoint keeps its
//!   last decided state; with [`IsolationMode::Local`] the voters it still hears
//!   decide by their own majority (alone, its own probes).
//! - **Degraded** ([`crate::health::degraded`]) is decided like down, among the up
//!   votes: degraded when as many voters as it takes to take an endpoint down (from as
//!   many regions) say degraded, not degraded when as many say up and not degraded;
//!   otherwise it stays. A minority seeing slowness moves nothing.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::IsolationMode;
use crate::model::{HealthState, RegionIndex};

/// Quorum settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rules {
    /// Vantage points the config names (at least 1: a lone server is its own voter).
    pub configured: u32,
    /// Votes needed either way (None: a majority of `configured`).
    pub down_votes: Option<u32>,
    /// Distinct regions among down votes.
    pub down_regions: u32,
    /// What an isolated server does.
    pub isolation: IsolationMode,
}

impl Rules {
    /// Votes needed to decide either way.
    pub fn needed(&self) -> u32 {
        self.down_votes
            .unwrap_or(self.configured.max(1) / 2 + 1)
            .max(1)
    }
}

/// The fresh verdicts of one vantage point.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ballot {
    /// Vantage name.
    pub name: String,
    /// Its region.
    pub region: Option<RegionIndex>,
    /// Fresh verdict per endpoint (index into the config's endpoints); None = not
    /// probed, or its verdict is stale.
    pub verdicts: Vec<Option<HealthState>>,
    /// Per endpoint, whether an up verdict says degraded (empty: none does).
    pub degraded: Vec<bool>,
}

impl Ballot {
    /// Whether its verdict on `endpoint` is up and degraded.
    fn degraded(&self, endpoint: usize) -> bool {
        self.degraded.get(endpoint).copied().unwrap_or(false)
    }
}

/// How the vantage points voted on one endpoint: bit `i` stands for
/// [`Tally::voters`]`[i]` (at most [`crate::config::MAX_VANTAGES`] voters, so a
/// decision over many endpoints allocates nothing per endpoint).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Votes {
    /// Voters that see it up.
    pub up: u64,
    /// Voters that see it down.
    pub down: u64,
    /// Voters that see it up and degraded (a subset of `up`).
    pub degraded: u64,
}

impl Votes {
    /// Whether anybody voted.
    pub fn any(&self) -> bool {
        self.up | self.down != 0
    }

    /// Whether voters disagree.
    pub fn split(&self) -> bool {
        self.up != 0 && self.down != 0
    }
}

/// The outcome of a quorum round.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tally {
    /// Decided state per endpoint (`None`: no decision and no previous state).
    pub states: Vec<Option<HealthState>>,
    /// Decided degraded verdict per endpoint (`None`: the votes do not decide it; it
    /// stays as it was).
    pub degraded: Vec<Option<bool>>,
    /// Votes per endpoint (ignored voters left out).
    pub votes: Vec<Votes>,
    /// The voters the bits of [`Votes`] stand for.
    pub voters: Vec<String>,
    /// Vantage points whose ballots were fresh.
    pub fresh: BTreeSet<String>,
    /// Vantage points whose votes were ignored as partitioned.
    pub partitioned: BTreeSet<String>,
    /// Votes needed either way.
    pub needed: u32,
    /// Whether fewer usable voters than `needed` were heard.
    pub isolated: bool,
}

/// Decides every endpoint's state. `previous` is the state before this round (kept
/// when the votes do not decide, and by an isolated server in `hold` mode).
pub fn tally(
    ballots: &[Ballot],
    previous: &[Option<HealthState>],
    endpoints: usize,
    rules: &Rules,
) -> Tally {
    let partitioned = partitioned(ballots);
    let voters: Vec<&Ballot> = ballots
        .iter()
        .filter(|b| !partitioned.contains(&b.name))
        .take(64) // the config names at most MAX_VANTAGES (64)
        .collect();
    let needed = rules.needed();
    let isolated = (voters.len() as u32) < needed;
    // What it takes to decide this round (None: nothing may change).
    let rule = match (isolated, rules.isolation) {
        (false, _) => Some((needed, rules.down_regions)),
        (true, IsolationMode::Hold) => None,
        (true, IsolationMode::Local) if voters.is_empty() => None,
        (true, IsolationMode::Local) => {
            let regions: BTreeSet<Option<RegionIndex>> = voters.iter().map(|b| b.region).collect();
            Some((
                voters.len() as u32 / 2 + 1,
                rules.down_regions.min(regions.len() as u32),
            ))
        }
    };
    let regions: Vec<Option<RegionIndex>> = voters.iter().map(|b| b.region).collect();
    let mut states = Vec::with_capacity(endpoints);
    let mut all_votes = Vec::with_capacity(endpoints);
    let mut degraded = Vec::with_capacity(endpoints);
    for endpoint in 0..endpoints {
        let mut votes = Votes::default();
        for (bit, ballot) in voters.iter().enumerate() {
            match ballot.verdicts.get(endpoint).copied().flatten() {
                Some(HealthState::Up) => {
                    votes.up |= 1 << bit;
                    if ballot.degraded(endpoint) {
                        votes.degraded |= 1 << bit;
                    }
                }
                Some(HealthState::Down) => votes.down |= 1 << bit,
                None => {}
            }
        }
        let before = previous.get(endpoint).copied().flatten();
        let state = match rule {
            Some((needed, min_regions))
                if votes.down.count_ones() >= needed
                    && distinct_regions(votes.down, &regions) >= min_regions =>
            {
                Some(HealthState::Down)
            }
            Some((needed, _)) if votes.up.count_ones() >= needed => Some(HealthState::Up),
            _ => before,
        };
        let clean = votes.up & !votes.degraded;
        degraded.push(match rule {
            Some((needed, min_regions))
                if votes.degraded.count_ones() >= needed
                    && distinct_regions(votes.degraded, &regions) >= min_regions =>
            {
                Some(true)
            }
            Some((needed, _)) if clean.count_ones() >= needed => Some(false),
            _ => None,
        });
        states.push(state);
        all_votes.push(votes);
    }
    Tally {
        states,
        degraded,
        votes: all_votes,
        voters: voters.iter().map(|b| b.name.clone()).collect(),
        fresh: ballots.iter().map(|b| b.name.clone()).collect(),
        partitioned,
        needed,
        isolated,
    }
}

/// How many distinct regions the voters in `set` come from.
fn distinct_regions(set: u64, regions: &[Option<RegionIndex>]) -> u32 {
    let bits = |mut rest: u64| {
        std::iter::from_fn(move || {
            let bit = (rest != 0).then(|| rest.trailing_zeros() as usize)?;
            rest &= rest - 1;
            Some(bit)
        })
    };
    // A voter counts if no voter before it in `set` shares its region.
    bits(set)
        .filter(|&bit| {
            let earlier = set & ((1u64 << bit) - 1);
            bits(earlier).all(|other| regions[other] != regions[bit])
        })
        .count() as u32
}

impl Tally {
    /// Names of the voters in `set`.
    pub fn names(&self, set: u64) -> impl Iterator<Item = &str> + '_ {
        (0..self.voters.len())
            .filter(move |bit| set & (1 << bit) != 0)
            .map(|bit| self.voters[bit].as_str())
    }

    /// Summary of the votes on endpoint `i` for logs: `{"fra-1": "down", ...}`.
    pub fn describe_votes(&self, i: usize) -> BTreeMap<String, &'static str> {
        let votes = self.votes.get(i).copied().unwrap_or_default();
        self.names(votes.up & !votes.degraded)
            .map(|v| (v.to_owned(), "up"))
            .chain(
                self.names(votes.degraded)
                    .map(|v| (v.to_owned(), "degraded")),
            )
            .chain(self.names(votes.down).map(|v| (v.to_owned(), "down")))
            .collect()
    }
}

/// Vantage points that report every probed endpoint down while another fresh vantage
/// point sees at least half of those endpoints up.
fn partitioned(ballots: &[Ballot]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for ballot in ballots {
        let probed: Vec<usize> = ballot
            .verdicts
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.map(|_| i))
            .collect();
        let all_down = probed.len() >= 2
            && probed
                .iter()
                .all(|&i| ballot.verdicts[i] == Some(HealthState::Down));
        if !all_down {
            continue;
        }
        let contradicted = ballots.iter().any(|other| {
            other.name != ballot.name && {
                let up = probed
                    .iter()
                    .filter(|&&i| other.verdicts.get(i).copied().flatten() == Some(HealthState::Up))
                    .count();
                up * 2 >= probed.len()
            }
        });
        if contradicted {
            out.insert(ballot.name.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const UP: Option<HealthState> = Some(HealthState::Up);
    const DOWN: Option<HealthState> = Some(HealthState::Down);

    fn ballot(name: &str, region: u16, verdicts: &[Option<HealthState>]) -> Ballot {
        Ballot {
            name: name.into(),
            region: Some(RegionIndex(region)),
            verdicts: verdicts.to_vec(),
            degraded: Vec::new(),
        }
    }

    fn rules(configured: u32, down_votes: Option<u32>, down_regions: u32) -> Rules {
        Rules {
            configured,
            down_votes,
            down_regions,
            isolation: IsolationMode::Hold,
        }
    }

    #[test]
    fn quorum_of_two_takes_an_endpoint_down() {
        let ballots = [
            ballot("a", 0, &[DOWN, UP]),
            ballot("b", 1, &[DOWN, UP]),
            ballot("c", 1, &[UP, UP]),
        ];
        let t = tally(&ballots, &[UP, UP], 2, &rules(3, Some(2), 1));
        assert_eq!(t.states, [DOWN, UP]);
        assert_eq!(t.names(t.votes[0].down).collect::<Vec<_>>(), ["a", "b"]);
        assert!(!t.isolated);
    }

    #[test]
    fn one_vantage_cannot_fail_over_alone() {
        let ballots = [
            ballot("a", 0, &[DOWN, UP]),
            ballot("b", 1, &[UP, UP]),
            ballot("c", 1, &[UP, UP]),
        ];
        for down_votes in [Some(2), None] {
            let t = tally(&ballots, &[UP, UP], 2, &rules(3, down_votes, 1));
            assert_eq!(t.states, [UP, UP]);
        }
    }

    #[test]
    fn the_majority_is_of_configured_vantage_points_not_of_those_heard() {
        // Five configured, one heard: it is isolated and holds, whatever it sees.
        let lonely = [ballot("a", 0, &[DOWN])];
        let t = tally(&lonely, &[UP], 1, &rules(5, None, 1));
        assert!(t.isolated);
        assert_eq!(t.needed, 3);
        assert_eq!(t.states, [UP]);
        // Three of five heard, all down: a quorum.
        let three = [
            ballot("a", 0, &[DOWN]),
            ballot("b", 1, &[DOWN]),
            ballot("c", 1, &[DOWN]),
        ];
        let t = tally(&three, &[UP], 1, &rules(5, None, 1));
        assert!(!t.isolated);
        assert_eq!(t.states, [DOWN]);
        // Two of five heard: isolated even though both agree.
        let t = tally(&three[..2], &[UP], 1, &rules(5, None, 1));
        assert!(t.isolated);
        assert_eq!(t.states, [UP]);
    }

    #[test]
    fn an_isolated_server_in_local_mode_trusts_the_voters_it_hears() {
        let lonely = [ballot("a", 0, &[DOWN, UP])];
        let local = Rules {
            isolation: IsolationMode::Local,
            ..rules(3, None, 2)
        };
        let t = tally(&lonely, &[UP, DOWN], 2, &local);
        assert!(t.isolated);
        assert_eq!(
            t.states,
            [DOWN, UP],
            "its own probes decide, one region is enough"
        );
        // Hearing nobody at all it holds even in local mode.
        assert_eq!(tally(&[], &[UP, DOWN], 2, &local).states, [UP, DOWN]);
    }

    #[test]
    fn a_vantage_calling_everything_down_is_partitioned_and_ignored() {
        let ballots = [
            ballot("a", 0, &[DOWN, DOWN, DOWN]),
            ballot("b", 1, &[UP, UP, DOWN]),
            ballot("c", 1, &[UP, UP, DOWN]),
        ];
        let t = tally(&ballots, &[UP, UP, UP], 3, &rules(3, Some(2), 1));
        assert_eq!(t.partitioned.iter().collect::<Vec<_>>(), ["a"]);
        // c's real outage is still seen by b and c.
        assert_eq!(t.states, [UP, UP, DOWN]);
        // A partitioned voter does not count toward the quorum either.
        let t = tally(&ballots[..2], &[UP, UP, UP], 3, &rules(3, None, 1));
        assert!(t.isolated);
        assert_eq!(t.states, [UP, UP, UP]);
    }

    #[test]
    fn region_diversity_is_required_for_down() {
        let ballots = [
            ballot("a", 0, &[DOWN]),
            ballot("b", 0, &[DOWN]),
            ballot("c", 1, &[UP]),
        ];
        assert_eq!(
            tally(&ballots, &[UP], 1, &rules(3, Some(2), 2)).states,
            [UP]
        );
        let ballots = [
            ballot("a", 0, &[DOWN]),
            ballot("b", 1, &[DOWN]),
            ballot("c", 1, &[UP]),
        ];
        assert_eq!(
            tally(&ballots, &[UP], 1, &rules(3, Some(2), 2)).states,
            [DOWN]
        );
    }

    #[test]
    fn silence_keeps_the_last_state() {
        let t = tally(&[], &[DOWN], 1, &rules(2, Some(2), 1));
        assert_eq!(t.states, [DOWN]);
        assert!(t.fresh.is_empty());
        assert!(t.isolated);
        // A lone server (no vantage points configured) is its own quorum.
        let one = [ballot("local", 0, &[UP])];
        let t = tally(&one, &[DOWN], 1, &rules(1, None, 1));
        assert!(!t.isolated);
        assert_eq!(t.states, [UP]);
    }

    #[test]
    fn degraded_is_decided_like_down_and_a_minority_moves_nothing() {
        // Three vantage points in three regions, a majority (2) needed from 2 regions.
        let r = rules(3, None, 2);
        let with = |name: &str, region: u16, degraded: bool| Ballot {
            degraded: vec![degraded],
            ..ballot(name, region, &[UP])
        };
        let decide = |ballots: &[Ballot]| tally(ballots, &[UP], 1, &r).degraded[0];
        // One of three sees it slow: nothing moves (it stays as it was).
        let one = [with("a", 1, true), with("b", 2, false), with("c", 3, false)];
        assert_eq!(decide(&one), Some(false));
        let split = [with("a", 1, true), with("b", 2, false)];
        assert_eq!(decide(&split), None, "1 against 1 of 3: no decision");
        let two = [with("a", 1, true), with("b", 2, true), with("c", 3, false)];
        assert_eq!(decide(&two), Some(true));
        // Two from the same region fall short of down_regions = 2, like down votes.
        let one_region = [with("a", 1, true), with("b", 1, true), with("c", 3, false)];
        assert_eq!(decide(&one_region), None);
        // Votes say so in status.
        let t = tally(&two, &[UP], 1, &r);
        assert_eq!(t.states[0], UP, "degraded is up");
        let described = t.describe_votes(0);
        assert_eq!(described["a"], "degraded");
        assert_eq!(described["c"], "up");
        // An isolated server in hold mode decides nothing, degraded included.
        let alone = [with("a", 1, true)];
        assert_eq!(decide(&alone), None);
    }
}
