//! Test harness for the Route 53 tests: a moto server (behind the fault-injecting
//! wrapper `moto_fault.py`) per test, a raw SDK client to set up and inspect state
//! independently of the agent, and configuration helpers.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_route53::types as sdk;
use failoverd::testing::config::{Config, ConfigSource};
use failoverd::testing::health::HealthSnapshot;
use failoverd::testing::sync::Agent;
use failoverd::testing::sync::metrics::SyncMetrics;
use failoverd::testing::sync::pace::{PollPolicy, RetryPolicy};
use failoverd::testing::sync::route53::{ClientOptions, Route53Client, SdkRoute53};

use super::Need;
use super::require::python_modules;

/// How to install moto's server (as `.ci/run` does).
const INSTALL_HINT: &str = "python3 -m pip install 'moto==5.2.1' flask flask-cors";

/// moto's server (Python modules moto, flask and flask_cors), for
/// [`require!`](super::require!).
pub fn moto() -> Need {
    python_modules(&["moto", "flask", "flask_cors"], INSTALL_HINT)
}

/// A moto server on a free loopback port, killed on drop.
pub(crate) struct Moto {
    child: Child,
    /// Its port.
    pub(crate) port: u16,
}

impl Moto {
    /// Starts `tests/support/moto_fault.py` and waits (with a deadline) until it
    /// prints its port; what is missing when moto is not installed (for
    /// [`require!`](super::require!)).
    pub(crate) fn start() -> Need<Self> {
        moto()?;
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/moto_fault.py");
        let mut child = Command::new("python3")
            .arg(&script)
            .arg("0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", script.display()));
        let stdout = child.stdout.take().expect("piped stdout");
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = sender.send(line);
            }
            // Keep draining so the server never blocks on a full pipe.
            for _ in lines {}
        });
        let line = match receiver.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                panic!("moto_fault.py did not report its port within 60 s");
            }
        };
        let port = line
            .rsplit(':')
            .next()
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line from moto_fault.py: {line:?}"));
        let moto = Self { child, port };
        moto.post("/moto-api/reset");
        Ok(moto)
    }

    /// The endpoint URL.
    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Sends a bodyless request; returns (status, body).
    pub(crate) fn request(&self, method: &str, path: &str) -> (u16, String) {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to moto");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .expect("write");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("read");
        let status = response
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        (status, body)
    }

    /// POST without a body, asserting 200.
    pub(crate) fn post(&self, path: &str) -> String {
        let (status, body) = self.request("POST", path);
        assert_eq!(status, 200, "POST {path}: {body}");
        body
    }

    /// Arms a fault: the next `count` requests fail with `code` (see
    /// moto_fault.py); `matching` restricts InvalidChangeBatch to bodies containing it.
    pub(crate) fn fault(&self, code: &str, count: u32, matching: Option<&str>) {
        let mut path = format!("/__fault?code={code}&count={count}");
        if let Some(text) = matching {
            path.push_str(&format!("&match={text}"));
        }
        self.post(&path);
    }

    /// How many faults of `code` were injected so far.
    pub(crate) fn injected(&self, code: &str) -> u32 {
        let (_, body) = self.request("GET", "/__fault");
        body.lines()
            .find(|l| l.starts_with(&format!("{code} ")))
            .and_then(|l| l.split("injected=").nth(1))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    /// An SDK client and a new hosted zone `name` in it (its id).
    pub(crate) async fn hosted_zone(&self, name: &str) -> (aws_sdk_route53::Client, String) {
        let sdk = self.sdk().await;
        let zone_id = create_zone(&sdk, name).await;
        (sdk, zone_id)
    }

    /// A raw SDK client (for setting up and checking state independently of the
    /// agent).
    pub(crate) async fn sdk(&self) -> aws_sdk_route53::Client {
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url(self.url())
            .credentials_provider(aws_sdk_route53::config::Credentials::new(
                "testing", "testing", None, None, "tests",
            ))
            .http_client(
                aws_smithy_http_client::Builder::new()
                    .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                        aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
                    ))
                    .build_https(),
            )
            .load()
            .await;
        aws_sdk_route53::Client::new(&config)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Creates a hosted zone; returns its bare id.
pub(crate) async fn create_zone(client: &aws_sdk_route53::Client, name: &str) -> String {
    let out = client
        .create_hosted_zone()
        .name(name)
        .caller_reference(format!("test-{name}"))
        .send()
        .await
        .expect("CreateHostedZone");
    out.hosted_zone()
        .expect("zone")
        .id()
        .rsplit('/')
        .next()
        .expect("id")
        .to_owned()
}

/// Every record set of a zone as (name, type, set id, ttl, values, weight).
pub(crate) async fn records(
    client: &aws_sdk_route53::Client,
    zone_id: &str,
) -> Vec<sdk::ResourceRecordSet> {
    let out = client
        .list_resource_record_sets()
        .hosted_zone_id(zone_id)
        .max_items(1000)
        .send()
        .await
        .expect("ListResourceRecordSets");
    out.resource_record_sets().to_vec()
}

/// Values of the record set with this name, type and set id.
pub(crate) async fn values(
    client: &aws_sdk_route53::Client,
    zone_id: &str,
    name: &str,
    record_type: &str,
    set: Option<&str>,
) -> Option<Vec<String>> {
    records(client, zone_id)
        .await
        .into_iter()
        .find(|r| {
            r.name() == name && r.r#type().as_str() == record_type && r.set_identifier() == set
        })
        .map(|r| {
            let mut v: Vec<String> = r
                .resource_records()
                .iter()
                .map(|v| v.value().to_owned())
                .collect();
            v.sort();
            v
        })
}

/// Creates a simple record set directly (a "foreign" record, not the agent's).
pub(crate) async fn put_foreign(
    client: &aws_sdk_route53::Client,
    zone_id: &str,
    name: &str,
    record_type: &str,
    value: &str,
) {
    let set = sdk::ResourceRecordSet::builder()
        .name(name)
        .r#type(sdk::RrType::from(record_type))
        .ttl(300)
        .resource_records(
            sdk::ResourceRecord::builder()
                .value(value)
                .build()
                .expect("rr"),
        )
        .build()
        .expect("set");
    client
        .change_resource_record_sets()
        .hosted_zone_id(zone_id)
        .change_batch(
            sdk::ChangeBatch::builder()
                .changes(
                    sdk::Change::builder()
                        .action(sdk::ChangeAction::Create)
                        .resource_record_set(set)
                        .build()
                        .expect("change"),
                )
                .build()
                .expect("batch"),
        )
        .send()
        .await
        .expect("foreign record");
}

/// A test workspace: a temporary directory with `zones/` and a config.
pub(crate) struct Workspace {
    /// The directory (removed on drop).
    pub(crate) dir: tempfile::TempDir,
}

impl Workspace {
    /// A workspace with one zone file for `zone` (apex SOA/NS plus `extra` lines).
    pub(crate) fn new(zone: &str, extra: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("zones")).expect("zones dir");
        let text = format!(
            "$ORIGIN {zone}\n$TTL 300\n@ IN SOA ns1.{zone} hostmaster.{zone} 1 3600 600 86400 30\n  IN NS ns1.{zone}\nns1 IN A 127.0.0.1\n{extra}\n"
        );
        std::fs::write(dir.path().join("zones").join(format!("{zone}zone")), text)
            .expect("zone file");
        Self { dir }
    }

    /// Writes `failoverd.toml` and returns its path.
    pub(crate) fn write_config(&self, text: &str) -> PathBuf {
        let path = self.dir.path().join("failoverd.toml");
        std::fs::write(&path, text).expect("config");
        path
    }

    /// Loads a configuration text (written to disk first) with its zones.
    pub(crate) fn load(&self, text: &str) -> (Arc<Config>, Arc<failoverd::testing::zone::ZoneSet>) {
        let path = self.write_config(text);
        let source = ConfigSource::from_file(&path).expect("read config");
        let loaded = failoverd::testing::service::load(source)
            .unwrap_or_else(|d| panic!("invalid test configuration:\n{d}"));
        (loaded.config, Arc::new(loaded.zones))
    }
}

/// Client options for tests: static credentials, short backoff and polling.
pub(crate) fn fast_options() -> ClientOptions {
    ClientOptions {
        retry: RetryPolicy {
            max_attempts: 6,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(80),
            transient_budget: Duration::from_secs(10),
        },
        poll: PollPolicy {
            initial: Duration::from_millis(20),
            max: Duration::from_millis(100),
        },
        page_size: 300,
        max_pages: 1000,
        attempt_timeout: Duration::from_secs(30),
        static_credentials: Some(("testing".into(), "testing".into())),
    }
}

/// An agent for a configuration, talking to its `endpoint_url` with `options`.
pub(crate) async fn agent_with(
    config: Arc<Config>,
    zones: Arc<failoverd::testing::zone::ZoneSet>,
    options: ClientOptions,
) -> Agent {
    let route53 = config.route53.clone().expect("[route53] section");
    let api = SdkRoute53::connect(&route53, &options).await;
    let client = Route53Client::new(
        Arc::new(api),
        &route53,
        options,
        Arc::new(SyncMetrics::default()),
    );
    Agent::new(config, zones, Arc::new(client)).expect("agent")
}

/// Asserts that `agent` has converged on what Route 53 holds: a fresh plan for
/// `health` (without force) has nothing left to do; otherwise the plan's table is the
/// failure message.
pub(crate) async fn assert_converges(agent: &Agent, health: &HealthSnapshot) {
    let plan = agent.plan(health, false).await.expect("plan");
    assert!(
        plan.is_empty(),
        "not converged; the next plan:\n{}",
        plan.render_table()
    );
}

/// Runs one reconcile (with `force` as given) that must apply every change, then
/// asserts that the agent has converged; returns what was applied.
pub(crate) async fn reconcile_converges(
    agent: &Agent,
    health: &HealthSnapshot,
    force: bool,
) -> failoverd::testing::sync::apply::ApplyReport {
    let run = agent.reconcile(health, force).await.expect("reconcile");
    let report = run.applied.expect("a plan with changes was applied");
    assert!(report.is_complete(), "{}", report.summary());
    assert_converges(agent, health).await;
    report
}

/// Polls `check` until it returns true or `timeout` passes.
pub(crate) async fn eventually<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
