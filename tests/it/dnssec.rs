//! DNSSEC signed ahead of time, checked by real validators: unbound (validator
//! iterator, DS trust anchor, val-permissive-mode: no) and delv, before and after a
//! failover; plus the wire details (DO, sizes, referrals) and the CLI. The validator
//! tests need unbound and delv (`require!`: a loud SKIP without them, a failure under
//! CI, which installs them: .ci/run).

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use failoverd::testing::dnssec::keys::{Algorithm, Key, Role, Timing, unix_now};
use hickory_proto::op::{Edns, Message, ResponseCode};
use hickory_proto::rr::RecordType;

use crate::support::backend::Backend;
use crate::support::dns::{query, raw_tcp, raw_udp, sorted_addresses};
use crate::support::peers::{Peer, ZoneFile};
use crate::support::require::tool;
use crate::support::validators::{Unbound, delv, validators};
use crate::support::{TestServer, data_dir, require, run_binary, run_binary_stdout, wait_until};

const ADDR_A: &str = "127.0.0.2";
const ADDR_B: &str = "127.0.0.3";
const ZONE: &str = "example.test";
const WAIT: Duration = Duration::from_secs(30);

/// The test zone plus a secure delegation (`sec`, with a DS RRset).
fn write_zone(dir: &Path) {
    let mut text = std::fs::read_to_string(data_dir().join("zones/example.test.zone")).unwrap();
    text.push_str(
        "sec IN NS ns.sec\nns.sec IN A 192.0.2.54\nsec IN DS 12345 13 2 \
         8D8A4E7B30C3AD39A7F55F2E6E0C5C1A8D7D2F4B3A6C9E8D7F1A2B3C4D5E6F70\n",
    );
    std::fs::write(dir.join("example.test.zone"), text).unwrap();
}

/// Generates keys into `dir/keys`: a CSK, or a KSK and ZSK pair.
fn keygen(dir: &Path, algorithm: Algorithm, split: bool) -> Vec<Key> {
    let roles = if split {
        vec![Role::Ksk, Role::Zsk]
    } else {
        vec![Role::Csk]
    };
    roles
        .into_iter()
        .map(|role| {
            let key = Key::generate(
                "example.test.",
                role,
                algorithm,
                Timing::from(unix_now() - 60),
            )
            .unwrap();
            key.save(&dir.join("keys")).unwrap();
            key
        })
        .collect()
}

/// The preamble of the signed-zone tests: a temporary directory with the test zone
/// ([`write_zone`]) and keys ([`keygen`]), and backend A up (its port is the pool's
/// check port).
struct Signed {
    /// Holds `example.test.zone` and `keys/`.
    dir: tempfile::TempDir,
    /// The keys generated into `dir/keys`.
    keys: Vec<Key>,
    /// Backend A ([`ADDR_A`]), healthy.
    a: Backend,
}

impl Signed {
    /// Keys of `algorithm` (a KSK and ZSK pair when `split`, else a CSK).
    fn new(algorithm: Algorithm, split: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        write_zone(dir.path());
        let keys = keygen(dir.path(), algorithm, split);
        let a = Backend::start(ip(ADDR_A), 0, None);
        Self { dir, keys, a }
    }
}

/// Trust anchors ("zone. DS tag alg 2 HEX") of the key-signing keys.
fn anchors(keys: &[Key]) -> Vec<String> {
    failoverd::testing::dnssec::keys::parent_records(keys, unix_now(), 3600)
        .into_iter()
        .filter(|l| l.split_whitespace().nth(3) == Some("DS"))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            format!("{} DS {} {} {} {}", f[0], f[4], f[5], f[6], f[7])
        })
        .collect()
}

/// Pool `web` (A and B, TCP-probed on `port`) answered by multivalue
/// `app.example.test`; zone from `dir`, signed with the keys in `dir/keys`.
fn config(dir: &Path, port: u16, nsec: &str, extra: &str) -> String {
    format!(
        r#"
version = 1
[server]
listen = ["127.0.0.1:0"]
udp_workers = 1
[zones]
directory = "{dir}"
files = ["example.test.zone"]
[checks.probe]
type = "tcp"
port = {port}
interval = "100ms"
timeout = "80ms"
jitter = "10ms"
rise = 1
fall = 1
[pools.web]
check = "probe"
endpoints = [{{ address = "{ADDR_A}", name = "a" }}, {{ address = "{ADDR_B}", name = "b" }}]
[[records]]
name = "app.example.test"
type = "A"
ttl = 2
policy = "multivalue"
pools = ["web"]
[dnssec]
key_directory = "{dir}/keys"
zones = ["example.test"]
nsec = "{nsec}"
{extra}
"#,
        dir = dir.display()
    )
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// Every kind of answer, validated by unbound (AD set).
fn expect_all_secure(unbound: &Unbound) {
    expect_validated(unbound, &|_, _| false);
}

/// Every kind of answer with its rcode; validated (AD set) except those `insecure`
/// says are proven insecure (no AD, and no SERVFAIL).
fn expect_validated(unbound: &Unbound, insecure: &dyn Fn(&str, RecordType) -> bool) {
    use RecordType::*;
    let ok = ResponseCode::NoError;
    let nx = ResponseCode::NXDomain;
    for (name, rtype, rcode, what) in [
        ("www.example.test.", A, ok, "static positive"),
        ("example.test.", DNSKEY, ok, "DNSKEY"),
        ("example.test.", MX, ok, "MX with additional"),
        ("nope.example.test.", A, nx, "NXDOMAIN"),
        ("www.example.test.", TXT, ok, "NODATA"),
        ("app.example.test.", TXT, ok, "NODATA at a dynamic name"),
        ("b.ent.example.test.", A, ok, "empty non-terminal"),
        ("x.wild.example.test.", A, ok, "wildcard"),
        (
            "deep.x.wild.example.test.",
            TXT,
            ok,
            "wildcard, two labels below",
        ),
        ("x.wild.example.test.", MX, ok, "wildcard NODATA"),
        ("x.cname-wild.example.test.", A, ok, "wildcard CNAME"),
        ("alias1.example.test.", A, ok, "CNAME chain"),
        (
            "broken.example.test.",
            A,
            nx,
            "CNAME to a name that does not exist",
        ),
        ("go.example.test.", A, ok, "CNAME to a dynamic name"),
        ("sub.example.test.", DS, ok, "insecure delegation: no DS"),
        ("sec.example.test.", DS, ok, "secure delegation: DS"),
    ] {
        let reply = unbound.ask(name, rtype);
        assert_eq!(
            reply.metadata.response_code,
            rcode,
            "{what}: {name} {rtype}\n{reply}\n{}",
            unbound.log_text()
        );
        assert_eq!(
            reply.metadata.authentic_data,
            !insecure(name, rtype),
            "{what}: {name} {rtype} AD\n{reply}\n{}",
            unbound.log_text()
        );
    }
    let ds = unbound.expect_secure("sec.example.test.", DS, ok);
    assert_eq!(
        ds.answers.iter().filter(|r| r.record_type() == DS).count(),
        1
    );
}

/// Sorted addresses of `app.example.test` validated by unbound.
fn validated_app(unbound: &Unbound) -> Option<Vec<String>> {
    let reply = unbound.ask("app.example.test.", RecordType::A);
    if !reply.metadata.authentic_data || reply.metadata.response_code != ResponseCode::NoError {
        return None;
    }
    let mut addresses = crate::support::dns::addresses(&reply);
    addresses.sort();
    Some(addresses)
}

#[test]
fn signed_answers_validate_in_unbound_before_and_after_a_failover() {
    require!(validators());
    let Signed { dir, keys, a } = Signed::new(Algorithm::Ed25519, false);
    let b = Backend::start(ip(ADDR_B), a.addr.port(), None);
    let server = TestServer::start(&config(dir.path(), a.addr.port(), "nsec3", ""));
    let both = vec![ADDR_A.to_owned(), ADDR_B.to_owned()];
    assert!(wait_until(WAIT, || sorted_addresses(
        server.addr,
        "app.example.test."
    ) == both));
    let unbound = Unbound::start(dir.path(), ZONE, server.addr, &anchors(&keys));
    expect_all_secure(&unbound);
    assert_eq!(validated_app(&unbound), Some(both));
    // Kill a backend: the new answer (signed when it was built) validates too.
    drop(b);
    assert!(wait_until(WAIT, || sorted_addresses(
        server.addr,
        "app.example.test."
    ) == [ADDR_A]));
    assert!(
        wait_until(WAIT, || validated_app(&unbound)
            == Some(vec![ADDR_A.to_owned()])),
        "the failed-over answer validates\n{}",
        unbound.log_text()
    );
    expect_all_secure(&unbound);
    // And back.
    let b = Backend::start(ip(ADDR_B), a.addr.port(), None);
    assert!(wait_until(WAIT, || validated_app(&unbound)
        .is_some_and(|v| v.len() == 2)));
    drop(b);
}

#[test]
fn nsec_chain_with_a_ksk_zsk_pair_of_ecdsa_keys_validates_in_unbound() {
    require!(validators());
    let Signed { dir, keys, a } = Signed::new(Algorithm::EcdsaP256, true);
    let b = Backend::start(ip(ADDR_B), a.addr.port(), None);
    let server = TestServer::start(&config(dir.path(), a.addr.port(), "nsec", ""));
    let unbound = Unbound::start(dir.path(), ZONE, server.addr, &anchors(&keys));
    expect_all_secure(&unbound);
    drop(b);
    assert!(
        wait_until(WAIT, || validated_app(&unbound)
            == Some(vec![ADDR_A.to_owned()])),
        "{}",
        unbound.log_text()
    );
    expect_all_secure(&unbound);
    // The DNSKEY RRset holds both keys; the parent gets the KSK's DS only.
    let dnskey = unbound.expect_secure("example.test.", RecordType::DNSKEY, ResponseCode::NoError);
    let count = dnskey
        .answers
        .iter()
        .filter(|r| r.record_type() == RecordType::DNSKEY)
        .count();
    assert_eq!(count, 2);
    assert_eq!(anchors(&keys).len(), 1);
}

/// `dark.example.test`: A from pool `solo` (one endpoint, ADDR_DARK) and AAAA from
/// pool `never` (an endpoint nothing listens for), both `all_down = "nodata"`.
fn nodata_records(port: u16) -> String {
    format!(
        r#"
[pools.solo]
check = "probe"
endpoints = [{{ address = "{ADDR_DARK}", name = "dark" }}]
[pools.never]
check = "never"
endpoints = [{{ address = "::1", name = "never" }}]
[[records]]
name = "dark.example.test"
type = "A"
ttl = 1
policy = "failover"
pools = ["solo"]
all_down = "nodata"
[[records]]
name = "dark.example.test"
type = "AAAA"
ttl = 1
policy = "failover"
pools = ["never"]
all_down = "nodata"
[checks.never]
type = "tcp"
port = {port}
interval = "100ms"
timeout = "80ms"
"#
    )
}

const ADDR_DARK: &str = "127.0.0.4";

/// The reply of unbound for `dark.example.test`/`rtype`, if validated: its rcode
/// and answer count.
fn validated_dark(unbound: &Unbound, rtype: RecordType) -> Option<(ResponseCode, usize)> {
    let reply = unbound.ask("dark.example.test.", rtype);
    reply.metadata.authentic_data.then(|| {
        let count = reply
            .answers
            .iter()
            .filter(|r| r.record_type() == rtype)
            .count();
        (reply.metadata.response_code, count)
    })
}

#[test]
fn an_all_down_nodata_answer_validates_in_unbound_and_delv() {
    require!(validators());
    for nsec in ["nsec3", "nsec"] {
        let Signed { dir, keys, a } = Signed::new(Algorithm::Ed25519, false);
        let port = a.addr.port();
        let dark = Backend::start(ip(ADDR_DARK), port, None);
        let never_port = crate::support::peers::free_port();
        let server =
            TestServer::start(&config(dir.path(), port, nsec, &nodata_records(never_port)));
        let unbound = Unbound::start(dir.path(), ZONE, server.addr, &anchors(&keys));
        let ok = ResponseCode::NoError;
        // A answers while its endpoint is up; AAAA (never up) is a validated NODATA
        // at a name the chain lists with AAAA.
        assert!(
            wait_until(WAIT, || validated_dark(&unbound, RecordType::A)
                == Some((ok, 1))),
            "{nsec}: A validates while up\n{}",
            unbound.log_text()
        );
        assert_eq!(
            validated_dark(&unbound, RecordType::AAAA),
            Some((ok, 0)),
            "{nsec}: the AAAA NODATA validates\n{}",
            unbound.log_text()
        );
        // Its endpoint fails: the A NODATA validates too, and so do the other
        // answers at the name.
        drop(dark);
        assert!(
            wait_until(WAIT, || validated_dark(&unbound, RecordType::A)
                == Some((ok, 0))),
            "{nsec}: the all-down NODATA validates\n{}",
            unbound.log_text()
        );
        assert_eq!(validated_dark(&unbound, RecordType::MX), Some((ok, 0)));
        let ds = anchors(&keys);
        let out = delv(dir.path(), server.addr, ZONE, &ds, "dark.example.test", "A");
        assert!(
            out.contains("; negative response, fully validated"),
            "{nsec}: delv\n{out}"
        );
        // And back: the positive answer validates again.
        let _dark = Backend::start(ip(ADDR_DARK), port, None);
        assert!(
            wait_until(WAIT, || validated_dark(&unbound, RecordType::A)
                == Some((ok, 1))),
            "{nsec}: A validates after recovery\n{}",
            unbound.log_text()
        );
        expect_all_secure(&unbound);
    }
}

#[test]
fn nsec3_opt_out_leaves_insecure_delegations_out_and_the_rest_validates() {
    require!(validators(), tool("kdig"));
    let Signed { dir, keys, a } = Signed::new(Algorithm::Ed25519, false);
    let transfer =
        "[transfer]\n[[transfer.secondaries]]\nname = \"kdig\"\nallow = [\"127.0.0.1\"]\n";
    let text = config(dir.path(), a.addr.port(), "nsec3", "opt_out = true")
        .replace("[dnssec]", &format!("{transfer}[dnssec]"));
    let server = TestServer::start(&text);
    // The chain: no record for the insecure delegation `sub`, the Opt-Out flag
    // only on the record whose span covers its hash; NSEC3PARAM flags stay 0.
    let zone = kdig_axfr(server.addr, "example.test.");
    let nsec3: Vec<Vec<&str>> = zone
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|f| f.get(3) == Some(&"NSEC3"))
        .collect();
    let hash = |name: &str| {
        failoverd::testing::dnssec::chain::base32hex(
            &failoverd::testing::dnssec::chain::nsec3_hash(
                &failoverd::testing::zone::name::wire_from_text(name).unwrap(),
            ),
        )
    };
    let (sub, sec) = (hash("sub.example.test."), hash("sec.example.test."));
    let owners: Vec<String> = nsec3
        .iter()
        .map(|f| f[0].split('.').next().unwrap().to_owned())
        .collect();
    assert!(!owners.contains(&sub), "{zone}");
    assert!(
        owners.contains(&sec),
        "a secure delegation keeps its record"
    );
    let flagged: Vec<&Vec<&str>> = nsec3.iter().filter(|f| f[5] == "1").collect();
    assert_eq!(flagged.len(), 1, "{zone}");
    let (from, to) = (flagged[0][0].split('.').next().unwrap(), flagged[0][8]);
    let inside = |h: &str| {
        if from < to {
            from < h && h < to
        } else {
            h > from || h < to
        }
    };
    assert!(inside(&sub), "{from} .. {to} covers {sub}");
    assert!(
        zone.lines().any(|l| l.contains("NSEC3PARAM\t1 0 0 -")),
        "{zone}"
    );
    // Validators: an answer whose proof rests on the Opt-Out span is insecure (the
    // name could be an unsigned delegation, RFC 5155 §8.6, §9.2): the insecure
    // delegation's DS denial at least; every other answer validates.
    let opt_out_proof = |name: &str, rtype: RecordType| {
        let output = Command::new("kdig")
            .arg(format!("@{}", server.addr.ip()))
            .arg("-p")
            .arg(server.addr.port().to_string())
            .args([name, &rtype.to_string(), "+dnssec", "+noall", "+authority"])
            .output()
            .expect("kdig");
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .any(|l| l.contains("\tNSEC3\t1 1 "))
    };
    assert!(opt_out_proof("sub.example.test.", RecordType::DS));
    assert!(
        opt_out_proof("host.sub.example.test.", RecordType::A),
        "the referral"
    );
    assert!(!opt_out_proof("nope.example.test.", RecordType::A));
    let unbound = Unbound::start(dir.path(), ZONE, server.addr, &anchors(&keys));
    expect_validated(&unbound, &opt_out_proof);
}

#[test]
fn metrics_say_when_the_signatures_expire() {
    let Signed { dir, a, .. } = Signed::new(Algorithm::Ed25519, false);
    let text =
        config(dir.path(), a.addr.port(), "nsec3", "") + "\n[admin]\nlisten = \"127.0.0.1:0\"\n";
    let server = TestServer::start(&text);
    let admin = server.service().admin_address().expect("admin API");
    let (code, body) = crate::support::http(admin, "GET", "/metrics", &[], b"");
    assert_eq!(code, 200);
    let gauge = |name: &str| -> u64 {
        let line = format!("{name}{{zone=\"example.test.\"}} ");
        body.lines()
            .find_map(|l| l.strip_prefix(&line))
            .unwrap_or_else(|| panic!("{name} in\n{body}"))
            .parse()
            .unwrap()
    };
    let now = unix_now();
    let signed = gauge("failoverd_dnssec_signed_timestamp_seconds");
    let expires = gauge("failoverd_dnssec_signature_expiration_timestamp_seconds");
    assert!(
        signed <= now && now - signed < 600,
        "signed {signed}, now {now}"
    );
    // The default validity: 14 days from signing.
    assert_eq!(expires - signed, 14 * 86_400, "{body}");
    crate::observability::promtool_check_metrics(&body);
}

#[test]
fn delv_agrees() {
    require!(validators());
    let Signed { dir, keys, a } = Signed::new(Algorithm::Ed25519, false);
    let _b = Backend::start(ip(ADDR_B), a.addr.port(), None);
    let server = TestServer::start(&config(dir.path(), a.addr.port(), "nsec3", ""));
    let ds = anchors(&keys);
    for (name, rtype, expect) in [
        ("www.example.test", "A", "; fully validated"),
        ("app.example.test", "A", "; fully validated"),
        ("x.wild.example.test", "A", "; fully validated"),
        (
            "nope.example.test",
            "A",
            "; negative response, fully validated",
        ),
        (
            "www.example.test",
            "TXT",
            "; negative response, fully validated",
        ),
        (
            "b.ent.example.test",
            "A",
            "; negative response, fully validated",
        ),
        (
            "sub.example.test",
            "DS",
            "; negative response, fully validated",
        ),
    ] {
        let out = delv(dir.path(), server.addr, ZONE, &ds, name, rtype);
        assert!(out.contains(expect), "delv {name} {rtype}:\n{out}");
    }
}

#[test]
fn a_trust_anchor_of_another_key_makes_unbound_answer_servfail() {
    require!(validators());
    let Signed { dir, a, .. } = Signed::new(Algorithm::Ed25519, false);
    let other = Key::generate(
        "example.test.",
        Role::Csk,
        Algorithm::Ed25519,
        Timing::from(0),
    )
    .unwrap();
    let server = TestServer::start(&config(dir.path(), a.addr.port(), "nsec3", ""));
    let unbound = Unbound::start(dir.path(), ZONE, server.addr, &anchors(&[other]));
    for name in [
        "www.example.test.",
        "nope.example.test.",
        "app.example.test.",
    ] {
        let reply = unbound.ask(name, RecordType::A);
        assert_eq!(
            reply.metadata.response_code,
            ResponseCode::ServFail,
            "{name}: {reply}"
        );
    }
}

/// A query with EDNS payload `payload` and DO as given.
fn edns_query(name: &str, rtype: RecordType, payload: u16, dnssec_ok: bool) -> Message {
    let mut message = query(name, rtype);
    let mut edns = Edns::new();
    edns.set_max_payload(payload);
    edns.set_dnssec_ok(dnssec_ok);
    message.set_edns(edns);
    message
}

fn exchange_udp(server: SocketAddr, message: &Message) -> Message {
    Message::from_vec(&raw_udp(server, &message.to_vec().unwrap()).unwrap()).unwrap()
}

fn count(records: &[hickory_proto::rr::Record], rtype: RecordType) -> usize {
    records.iter().filter(|r| r.record_type() == rtype).count()
}

#[test]
fn rrsigs_only_with_do_and_sizes_are_respected() {
    let Signed { dir, a, .. } = Signed::new(Algorithm::Ed25519, false);
    let server = TestServer::start(&config(dir.path(), a.addr.port(), "nsec3", ""));
    let addr = server.addr;
    use RecordType::*;
    // DO=0: the unsigned answer, byte for byte what an unsigned zone gives.
    let plain = exchange_udp(addr, &edns_query("www.example.test.", A, 1232, false));
    assert_eq!(count(&plain.answers, RRSIG), 0);
    let signed = exchange_udp(addr, &edns_query("www.example.test.", A, 1232, true));
    assert_eq!(count(&signed.answers, A), 2);
    assert_eq!(count(&signed.answers, RRSIG), 1);
    // Dynamic answers carry their variant's signature.
    let dynamic = exchange_udp(addr, &edns_query("app.example.test.", A, 1232, true));
    assert_eq!(count(&dynamic.answers, RRSIG), 1, "{dynamic}");
    // NXDOMAIN: SOA, and three NSEC3 (closest encloser, next closer, wildcard), signed.
    let nx = exchange_udp(addr, &edns_query("nope.example.test.", A, 1232, true));
    assert_eq!(nx.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(count(&nx.authorities, SOA), 1);
    let nsec3 = count(&nx.authorities, NSEC3);
    assert!((2..=3).contains(&nsec3), "{nx}");
    assert_eq!(count(&nx.authorities, RRSIG), nsec3 + 1);
    let plain_nx = exchange_udp(addr, &edns_query("nope.example.test.", A, 1232, false));
    assert_eq!(plain_nx.authorities.len(), 1);
    // Too big for 512 bytes with its signature: TC over UDP, whole over TCP.
    let big = edns_query("big.example.test.", TXT, 512, true);
    let truncated = exchange_udp(addr, &big);
    assert!(truncated.metadata.truncation, "{truncated}");
    let whole = Message::from_vec(&raw_tcp(addr, &big.to_vec().unwrap()).unwrap()).unwrap();
    assert_eq!(count(&whole.answers, TXT), 6);
    assert_eq!(count(&whole.answers, RRSIG), 1);
    // Additional data goes first: MX fits, its target's 30 addresses do not.
    let mx = exchange_udp(addr, &edns_query("mx-big.example.test.", MX, 512, true));
    assert!(!mx.metadata.truncation);
    assert_eq!(count(&mx.answers, MX), 1);
    assert_eq!(count(&mx.answers, RRSIG), 1);
    assert_eq!(count(&mx.additionals, A), 0);
    // Referrals: an insecure delegation with the NSEC3 proving no DS, a secure one
    // with its signed DS; glue unsigned.
    let insecure = exchange_udp(addr, &edns_query("x.sub.example.test.", A, 1232, true));
    assert_eq!(count(&insecure.authorities, NS), 2);
    assert_eq!(count(&insecure.authorities, NSEC3), 1, "{insecure}");
    assert_eq!(count(&insecure.additionals, RRSIG), 0);
    let secure = exchange_udp(addr, &edns_query("x.sec.example.test.", A, 1232, true));
    assert_eq!(count(&secure.authorities, DS), 1, "{secure}");
    assert_eq!(count(&secure.authorities, RRSIG), 1);
}

#[test]
fn keygen_and_ds_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let keys_arg = keys.to_str().unwrap();
    let (ok, out) = run_binary(&[
        "dnssec",
        "keygen",
        "Example.Test",
        "-d",
        keys_arg,
        "--split",
    ]);
    assert!(ok, "{out}");
    let mut files: Vec<String> = std::fs::read_dir(&keys)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    assert_eq!(files.len(), 4, "{files:?}");
    assert!(files.iter().all(|f| f.starts_with("Kexample.test.+015+")));
    #[cfg(unix)]
    for f in files.iter().filter(|f| f.ends_with(".private")) {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(keys.join(f))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{f}");
    }
    let (ok, out) = run_binary_stdout(&["dnssec", "ds", "example.test", "-d", keys_arg]);
    assert!(ok, "{out}");
    let kinds: Vec<&str> = out
        .lines()
        .filter_map(|l| l.split_whitespace().nth(3))
        .collect();
    assert_eq!(
        kinds,
        ["DS", "CDS", "CDNSKEY"],
        "only the KSK goes to the parent:\n{out}"
    );
    assert!(
        out.contains(" 15 2 "),
        "SHA-256 digest of an Ed25519 key:\n{out}"
    );
    // A ZSK for a rollover, published now and active in a day.
    let (ok, out) = run_binary(&[
        "dnssec",
        "keygen",
        "example.test",
        "-d",
        keys_arg,
        "--role",
        "zsk",
        "--activate",
        "+1d",
        "--algorithm",
        "ecdsa-p256",
    ]);
    assert!(ok, "{out}");
    let text: String = std::fs::read_dir(&keys)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("+013+") && p.extension().unwrap() == "key")
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    assert!(
        text.contains("role: zsk") && text.contains("algorithm: 13"),
        "{text}"
    );
}

#[test]
fn dnssec_config_errors_carry_key_paths() {
    let dir = tempfile::tempdir().unwrap();
    write_zone(dir.path());
    let load_error = |text: String| {
        let source =
            failoverd::testing::config::ConfigSource::from_text(text, data_dir().join("configs"));
        failoverd::testing::service::load(source)
            .err()
            .expect("refused")
            .to_string()
    };
    let error = load_error(config(
        dir.path(),
        80,
        "nsec5",
        "signature_validity = \"10d\"\nrefresh = \"7d\"\ninception_offset = \"soon\"",
    ));
    for want in ["dnssec.nsec", "dnssec.refresh", "dnssec.inception_offset"] {
        assert!(error.contains(want), "{want} in:\n{error}");
    }
    // Opt-out is for NSEC3 only.
    let error = load_error(config(dir.path(), 80, "nsec", "opt_out = true"));
    assert!(error.contains("dnssec.opt_out"), "{error}");
    // No keys in the directory: refused at load with the fix.
    let error = load_error(config(dir.path(), 80, "nsec3", ""));
    assert!(error.contains("dnssec.key_directory"), "{error}");
}

/// kdig's AXFR output of `zone` from `server` as zone-file text.
fn kdig_axfr(server: SocketAddr, zone: &str) -> String {
    kdig_transfer(server, zone, "AXFR")
}

/// kdig's output of a transfer (`AXFR`, `IXFR=serial`) of `zone` from `server`.
fn kdig_transfer(server: SocketAddr, zone: &str, kind: &str) -> String {
    let output = Command::new("kdig")
        .arg(format!("@{}", server.ip()))
        .arg("-p")
        .arg(server.port().to_string())
        .arg(kind)
        .arg(zone)
        .arg("+noall")
        .arg("+answer")
        .output()
        .expect("kdig");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn a_signed_zone_transfers_with_its_signatures_and_validates_at_a_secondary() {
    require!(validators(), tool("kdig"), tool("knotd"));
    let Signed { dir, keys, a } = Signed::new(Algorithm::Ed25519, false);
    let b = Backend::start(ip(ADDR_B), a.addr.port(), None);
    let dark = Backend::start(ip(ADDR_DARK), a.addr.port(), None);
    let transfer =
        "[transfer]\n[[transfer.secondaries]]\nname = \"kdig\"\nallow = [\"127.0.0.1\"]\n";
    let text = config(
        dir.path(),
        a.addr.port(),
        "nsec3",
        &nodata_records(crate::support::peers::free_port()),
    )
    .replace("[dnssec]", &format!("{transfer}[dnssec]"));
    let server = TestServer::start(&text);
    assert!(wait_until(WAIT, || sorted_addresses(
        server.addr,
        "app.example.test."
    )
    .len()
        == 2));
    let serve_transferred = |name: &str| {
        let zone = kdig_axfr(server.addr, "example.test.");
        for rtype in ["RRSIG", "NSEC3", "NSEC3PARAM", "DNSKEY", "CDS", "CDNSKEY"] {
            assert!(
                zone.contains(&format!("\t{rtype}\t")),
                "{rtype} in the AXFR:\n{zone}"
            );
        }
        let sub = dir.path().join(name);
        std::fs::create_dir_all(&sub).unwrap();
        let path = sub.join("example.test.zone");
        std::fs::write(&path, &zone).unwrap();
        (
            sub.clone(),
            Peer::knot(
                &sub,
                &[ZoneFile {
                    origin: ZONE.into(),
                    path,
                }],
            ),
        )
    };
    // The secondary (Knot serving what was transferred, no signing of its own)
    // answers validated data, before and after a failover.
    let dark_aaaa = || {
        crate::support::dns::ask(server.addr, "dark.example.test.", RecordType::AAAA)
            .answers
            .len()
    };
    assert!(wait_until(WAIT, || !sorted_addresses(
        server.addr,
        "dark.example.test."
    )
    .is_empty()
        && dark_aaaa() == 0));
    let before = kdig_axfr(server.addr, "example.test.");
    let (sub, knot) = serve_transferred("before");
    let unbound = Unbound::start(&sub, ZONE, knot.addr, &anchors(&keys));
    expect_all_secure(&unbound);
    assert_eq!(validated_app(&unbound).map(|v| v.len()), Some(2));
    // The AAAA that is never up transfers as no record, with its name's NSEC3
    // without AAAA: the secondary's NODATA validates.
    let ok = ResponseCode::NoError;
    assert_eq!(validated_dark(&unbound, RecordType::A), Some((ok, 1)));
    assert_eq!(validated_dark(&unbound, RecordType::AAAA), Some((ok, 0)));
    drop(unbound);
    drop(knot);
    drop(b);
    drop(dark);
    assert!(wait_until(WAIT, || sorted_addresses(
        server.addr,
        "app.example.test."
    ) == [ADDR_A]
        && sorted_addresses(server.addr, "dark.example.test.")
            .is_empty()));
    let (sub, knot) = serve_transferred("after");
    let unbound = Unbound::start(&sub, ZONE, knot.addr, &anchors(&keys));
    assert_eq!(
        validated_app(&unbound),
        Some(vec![ADDR_A.to_owned()]),
        "{}",
        unbound.log_text()
    );
    // Both of its types have nothing to answer: the name leaves the transferred
    // zone (a zone file has no name without records), and its NSEC3 with it.
    let nx = ResponseCode::NXDomain;
    assert_eq!(
        validated_dark(&unbound, RecordType::A),
        Some((nx, 0)),
        "{}",
        unbound.log_text()
    );
    assert_eq!(validated_dark(&unbound, RecordType::AAAA), Some((nx, 0)));
    expect_all_secure(&unbound);
    // The incremental transfer from the first version, applied to it, gives the
    // full transfer of the second (the replaced NSEC3 deleted, its new one added).
    let after = kdig_axfr(server.addr, "example.test.");
    let applied = apply_ixfr(
        &before,
        &kdig_transfer(
            server.addr,
            "example.test.",
            &format!("IXFR={}", soa_serial(&before)),
        ),
    );
    assert_eq!(applied, rrs_without_soa(&after), "IXFR applied ≠ AXFR");
}

/// The records of zone text, one per line, without SOA records.
fn rrs_without_soa(text: &str) -> std::collections::BTreeSet<String> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with(';'))
        .filter(|l| l.split_whitespace().nth(3) != Some("SOA"))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

/// The serial of the first SOA in zone text.
fn soa_serial(text: &str) -> u32 {
    text.lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(3) == Some(&"SOA")).then(|| f[6].parse().unwrap())
        })
        .expect("an SOA")
}

/// Applies an IXFR (RFC 1995: new SOA, then per change old SOA, deletions, new
/// SOA, additions, then the new SOA) to the records of `zone`.
fn apply_ixfr(zone: &str, ixfr: &str) -> std::collections::BTreeSet<String> {
    let mut records = rrs_without_soa(zone);
    let lines: Vec<&str> = ixfr
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with(';'))
        .collect();
    assert!(lines.len() > 2, "an incremental transfer:\n{ixfr}");
    let mut soas = 0;
    for line in &lines[1..lines.len() - 1] {
        if line.split_whitespace().nth(3) == Some("SOA") {
            soas += 1;
            continue;
        }
        let rr = line.split_whitespace().collect::<Vec<_>>().join(" ");
        if soas % 2 == 1 {
            assert!(records.remove(&rr), "IXFR deletes a record not there: {rr}");
        } else {
            assert!(
                records.insert(rr.clone()),
                "IXFR adds a record already there: {rr}"
            );
        }
    }
    records
}

/// The bench zone of ../shared/bench/gen-data.py (10k A records and the rest).
fn bench_zone(n: usize) -> String {
    let mut lines = vec![
        "$ORIGIN bench.test.".to_owned(),
        "$TTL 300".to_owned(),
        "@ IN SOA ns1.bench.test. hostmaster.bench.test. 2024010101 3600 900 604800 300".to_owned(),
        "@ IN NS ns1.bench.test.".to_owned(),
        "@ IN NS ns2.bench.test.".to_owned(),
        "ns1 IN A 127.0.0.53".to_owned(),
        "ns2 IN A 127.0.0.54".to_owned(),
        "@ IN MX 10 mail1.bench.test.".to_owned(),
        "@ IN MX 20 mail2.bench.test.".to_owned(),
        "@ IN TXT \"v=spf1 -all\"".to_owned(),
    ];
    for i in 1..=n {
        lines.push(format!(
            "h{i} IN A 10.{}.{}.{}",
            (i >> 16) & 255,
            (i >> 8) & 255,
            i & 255
        ));
    }
    for i in 1..=50 {
        lines.push(format!("v6-{i} IN AAAA 2001:db8::{i:x}"));
        lines.push(format!("alias{i} IN CNAME h{i}.bench.test."));
        lines.push(format!("txt{i} IN TXT \"bench text record {i}\""));
    }
    for i in 1..=20 {
        lines.push(format!("mail{i} IN A 10.255.0.{i}"));
        lines.push(format!("mx{i} IN MX 10 mail{i}.bench.test."));
    }
    lines.join("\n") + "\n"
}

/// Milliseconds of `f`.
fn timed<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let start = std::time::Instant::now();
    let out = f();
    (out, start.elapsed().as_secs_f64() * 1000.0)
}

/// Prints the time to build a signed snapshot, at start and after a health change,
/// for the bench zone (one dynamic name) and for 10k dynamic names; unsigned beside
/// it. Run: cargo test --release --test it -- --ignored signed_snapshot_build_times --nocapture
#[test]
#[ignore]
fn signed_snapshot_build_times() {
    use failoverd::testing::dns::Snapshot;
    use failoverd::testing::dnssec::Signing;
    use failoverd::testing::health::HealthSnapshot;
    use failoverd::testing::model::HealthState;
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bench.test.zone"), bench_zone(10_000)).unwrap();
    let key = Key::generate(
        "bench.test.",
        Role::Csk,
        Algorithm::Ed25519,
        Timing::from(0),
    )
    .unwrap();
    key.save(&dir.path().join("keys")).unwrap();
    println!(
        "| zone | dynamic names | signed | full build (ms) | after a health change (ms) | all down, NODATA proofs (ms) |"
    );
    println!("|---|---|---|---|---|---|");
    for dynamic in [1usize, 10_000] {
        let mut text = format!(
            "version = 1\n[server]\nlisten = [\"127.0.0.1:0\"]\n[zones]\ndirectory = \"{}\"\nfiles = [\"bench.test.zone\"]\n\
             [pools.fo]\nendpoints = [{{ address = \"127.0.0.2\", name = \"a\" }}, {{ address = \"127.0.0.3\", name = \"b\" }}]\n",
            dir.path().display()
        );
        for i in 0..dynamic {
            let name = if i == 0 {
                "www.fo".to_owned()
            } else {
                format!("d{i}.fo")
            };
            text.push_str(&format!(
                "[[records]]\nname = \"{name}.bench.test\"\ntype = \"A\"\nttl = 1\npolicy = \"failover\"\npools = [\"fo\"]\nall_down = \"nodata\"\n"
            ));
        }
        for signed in [false, true] {
            let mut text = text.clone();
            if signed {
                text.push_str(&format!(
                    "[dnssec]\nkey_directory = \"{}/keys\"\nzones = [\"bench.test\"]\n",
                    dir.path().display()
                ));
            }
            let source = failoverd::testing::config::ConfigSource::from_text(text, dir.path());
            let loaded =
                failoverd::testing::service::load(source).unwrap_or_else(|d| panic!("{d}"));
            let config = loaded.config.clone();
            let health = HealthSnapshot::from_config(&config);
            let signing = loaded.keys.clone().map(|keys| Signing {
                keys,
                now: unix_now(),
            });
            let (snapshot, full) = timed(|| {
                Snapshot::build_signed(
                    config.clone(),
                    loaded.zones,
                    health.clone(),
                    1,
                    signing.as_ref(),
                )
                .unwrap()
            });
            let mut endpoints = health.endpoints().to_vec();
            endpoints[0].state = HealthState::Down;
            let down = HealthSnapshot::from_health(endpoints);
            let (after, change) = timed(|| snapshot.with_health(down.clone(), 2));
            assert_eq!(after.signed_at().is_some(), signed);
            // Both endpoints down: every record answers NODATA, each with its own
            // signed NSEC3 (the type taken out of its bitmap).
            let mut endpoints = down.endpoints().to_vec();
            endpoints[1].state = HealthState::Down;
            let dark = HealthSnapshot::from_health(endpoints);
            let (dark, all_down) = timed(|| after.with_health(dark, 3));
            println!(
                "| bench.test (10k records) | {dynamic} | {} | {full:.0} | {change:.3} | {all_down:.3} |",
                if signed { "yes (Ed25519, NSEC3)" } else { "no" }
            );
            drop(Arc::new(after));
            drop(Arc::new(dark));
        }
    }
}

#[test]
fn a_key_activating_later_signs_from_its_time_without_a_reload() {
    let Signed { dir, a, .. } = Signed::new(Algorithm::Ed25519, false);
    let now = unix_now();
    let later = Timing {
        created: now,
        publish: now,
        activate: now + 2,
        inactive: None,
        delete: None,
    };
    Key::generate("example.test.", Role::Zsk, Algorithm::EcdsaP256, later)
        .unwrap()
        .save(&dir.path().join("keys"))
        .unwrap();
    let server = TestServer::start(&config(dir.path(), a.addr.port(), "nsec3", ""));
    let rrsigs = |name: &str| {
        let reply = exchange_udp(server.addr, &edns_query(name, RecordType::A, 1232, true));
        count(&reply.answers, RecordType::RRSIG)
    };
    // Published at once (two DNSKEYs), signing only from its activation time.
    let keys = exchange_udp(
        server.addr,
        &edns_query("example.test.", RecordType::DNSKEY, 1232, true),
    );
    assert_eq!(count(&keys.answers, RecordType::DNSKEY), 2);
    if unix_now() < now + 2 {
        assert_eq!(rrsigs("www.example.test."), 1);
    }
    // The plane's timer re-signs at the key event: static and dynamic answers.
    assert!(wait_until(WAIT, || rrsigs("www.example.test.") == 2));
    assert!(wait_until(WAIT, || rrsigs("app.example.test.") == 2));
}

/// Publish time with 10k signed dynamic names (issue 22: p99 ≤ 5 ms): the plane's
/// publish — `with_health` then the transfer stamp — over a few hundred health
/// changes cycling through a failover and a doubt (a down, a up, a in doubt, doubt
/// cleared), with Ed25519 and ECDSA P-256 CSKs, with and without a secondary
/// configured. Prints p50/p99 per case. Run: cargo test --release --test it --
/// --ignored publish_times_with_10k_signed_dynamic_names --nocapture
#[test]
#[ignore]
fn publish_times_with_10k_signed_dynamic_names() {
    use failoverd::testing::dns::Snapshot;
    use failoverd::testing::dns::xfr::TransferState;
    use failoverd::testing::dnssec::Signing;
    use failoverd::testing::health::HealthSnapshot;
    use failoverd::testing::model::HealthState;
    use std::sync::Arc;
    let changes: usize = std::env::var("CHANGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    println!("| algorithm | transfers | changes | p50 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|---|");
    for algorithm in [Algorithm::Ed25519, Algorithm::EcdsaP256] {
        for transfers in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("bench.test.zone"), bench_zone(10_000)).unwrap();
            Key::generate("bench.test.", Role::Csk, algorithm, Timing::from(0))
                .unwrap()
                .save(&dir.path().join("keys"))
                .unwrap();
            let mut text = format!(
                "version = 1\n[server]\nlisten = [\"127.0.0.1:0\"]\n[zones]\ndirectory = \"{}\"\n\
                 files = [\"bench.test.zone\"]\n[pools.fo]\nendpoints = [{{ address = \"127.0.0.2\", \
                 name = \"a\" }}, {{ address = \"127.0.0.3\", name = \"b\" }}]\n",
                dir.path().display()
            );
            for i in 0..10_000 {
                text.push_str(&format!(
                    "[[records]]\nname = \"d{i}.fo.bench.test\"\ntype = \"A\"\nttl = 60\n\
                     policy = \"failover\"\npools = [\"fo\"]\nall_down = \"nodata\"\n"
                ));
            }
            if transfers {
                text.push_str(
                    "[transfer]\n[[transfer.secondaries]]\nname = \"s\"\nallow = [\"127.0.0.1\"]\n",
                );
            }
            text.push_str(&format!(
                "[dnssec]\nkey_directory = \"{}/keys\"\nzones = [\"bench.test\"]\n",
                dir.path().display()
            ));
            let source = failoverd::testing::config::ConfigSource::from_text(text, dir.path());
            let loaded =
                failoverd::testing::service::load(source).unwrap_or_else(|d| panic!("{d}"));
            let config = loaded.config.clone();
            let up = HealthSnapshot::from_config(&config);
            let signing = loaded.keys.clone().map(|keys| Signing {
                keys,
                now: unix_now(),
            });
            let transfer = transfers.then(|| TransferState::new(&config.transfer));
            let publish = |snapshot: Snapshot| match &transfer {
                Some(state) => state.stamp(snapshot),
                None => snapshot,
            };
            let mut current = publish(
                Snapshot::build_signed(
                    config.clone(),
                    loaded.zones,
                    up.clone(),
                    1,
                    signing.as_ref(),
                )
                .unwrap(),
            );
            let mut endpoints = up.endpoints().to_vec();
            endpoints[0].state = HealthState::Down;
            let down = HealthSnapshot::from_health(endpoints);
            let doubt = up.clone().with_doubt(vec![Some(2), None]);
            let states = [down, up.clone(), doubt, up];
            let mut times = Vec::with_capacity(changes);
            for i in 0..changes {
                let health = states[i % states.len()].clone();
                let (next, ms) = timed(|| publish(current.with_health(health, i as u64 + 2)));
                times.push(ms);
                drop(Arc::new(std::mem::replace(&mut current, next)));
            }
            let serial = transfer
                .as_ref()
                .and_then(|t| t.serial("bench.test."))
                .map_or_else(String::new, |s| format!(" (serial {s})"));
            times.sort_by(f64::total_cmp);
            let at = |q: f64| {
                times[((times.len() as f64 * q).ceil() as usize).clamp(1, times.len()) - 1]
            };
            println!(
                "| {algorithm:?} | {}{serial} | {changes} | {:.2} | {:.2} | {:.2} |",
                if transfers { "yes" } else { "no" },
                at(0.5),
                at(0.99),
                times[times.len() - 1],
            );
        }
    }
}
