//! Status from a real board, snapshot and overrides: every endpoint, pool and
//! record, the operator's effects, isolation only for a server, and the clock
//! taken from the inputs.

use std::path::PathBuf;
use std::sync::Arc;

use super::*;
use crate::config::ConfigSource;
use crate::health::HealthSnapshot;
use crate::health::board::Restored;

fn config() -> Arc<Config> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/configs");
    let text = std::fs::read_to_string(dir.join("integration.toml")).unwrap();
    let (config, diagnostics) = Config::load(ConfigSource::from_text(text, dir)).unwrap();
    assert!(!diagnostics.has_errors(), "{diagnostics}");
    Arc::new(config)
}

struct World {
    config: Arc<Config>,
    snapshot: Snapshot,
    board: Board,
    tally: Tally,
    effects: Effects,
    overrides: OverrideSet,
    state_file: StateFileStatus,
}

fn world() -> World {
    let config = config();
    let (zones, _) = crate::zone::load(&config).unwrap();
    let eu1 = config.endpoint_by_label("eu/eu-1").unwrap();
    let eu2 = config.endpoint_by_label("eu/eu-2").unwrap();
    let mut effects = Effects {
        forced: vec![None; config.endpoints.len()],
        drained: vec![false; config.endpoints.len()],
        pins: vec![None; config.records.len()],
        dials: Vec::new(),
    };
    effects.drained[eu2.0 as usize] = true;
    let health = HealthSnapshot::from_config(&config)
        .with(
            eu1,
            EndpointHealth {
                state: HealthState::Down,
                source: HealthSource::Observed,
            },
        )
        .with_overrides(effects.drained.clone(), effects.pins.clone());
    let snapshot = Snapshot::build(config.clone(), zones, health, 7);
    let mut board = Board::new(&config, 0, &Restored::default(), 1_000);
    let (_, tally) = board.decide(Duration::ZERO, 1_000);
    World {
        config,
        snapshot,
        board,
        tally,
        effects,
        overrides: OverrideSet::default(),
        state_file: StateFileStatus::default(),
    }
}

fn inputs(world: &World, server: bool) -> StatusInputs<'_> {
    StatusInputs {
        config: &world.config,
        snapshot: &world.snapshot,
        board: &world.board,
        tally: &world.tally,
        effects: &world.effects,
        overrides: &world.overrides,
        impaired: false,
        server,
        last_reload: None,
        state_file: &world.state_file,
        counted_since_ms: 123,
        now: Duration::from_secs(1),
        now_ms: 2_000,
    }
}

#[test]
fn status_shows_the_published_health_and_the_operators_effects() {
    let world = world();
    let status = build(&inputs(&world, true));
    assert_eq!(status.generation, 7);
    assert_eq!(status.endpoints.len(), world.config.endpoints.len());
    let eu1 = &status.endpoints[0];
    assert_eq!(
        (eu1.endpoint.as_str(), eu1.state, eu1.source),
        ("eu/eu-1", HealthState::Down, HealthSource::Observed)
    );
    let eu2 = &status.endpoints[1];
    assert!(eu2.drained && !eu2.forced_by_operator, "{eu2:?}");
    assert_eq!(eu2.target, "192.0.2.12");
    assert_eq!(status.records.len(), world.config.records.len());
    let eu = status.pools.iter().find(|p| p.pool == "eu").unwrap();
    assert_eq!((eu.up, eu.usable), (false, 0), "{eu:?}");
    let app = &status.records[0];
    assert_eq!(
        (app.name.as_str(), app.record_type.as_str()),
        ("app.example.test.", "A")
    );
    assert!(
        app.answers[0]
            .candidates
            .iter()
            .all(|c| c.starts_with("us/")),
        "{app:?}"
    );
    assert_eq!(status.counted_since_ms, 123);
    assert!(status.attention.is_empty(), "the caller adds attention");
    assert!(status.isolation.is_some(), "a server shows isolation");
}

#[test]
fn an_agent_shows_no_isolation_and_the_same_inputs_the_same_status() {
    let world = world();
    let agent = build(&inputs(&world, false));
    assert!(agent.isolation.is_none());
    let again = build(&inputs(&world, false));
    assert_eq!(
        serde_json::to_string(&again).unwrap(),
        serde_json::to_string(&agent).unwrap(),
        "pure: same inputs"
    );
}

#[test]
fn millis_round_to_ten_microseconds() {
    assert_eq!(millis(Duration::from_micros(1_234_567)), 1234.57);
}
