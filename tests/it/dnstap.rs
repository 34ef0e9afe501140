//! dnstap logging to a real consumer: `fstrm_capture` writes the Frame Streams file,
//! `dnstap-read` decodes it.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use hickory_proto::rr::RecordType;

use crate::support::dns::ask;
use crate::support::require::tool;
use crate::support::{SERVER_HEAD, TestServer, require, wait_until};

/// fstrm_capture on a socket in `dir`, killed (SIGTERM, so it flushes) on drop.
struct Capture {
    child: Child,
}

impl Capture {
    fn stop(&mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let _ = self.child.wait();
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn queries_and_responses_reach_fstrm_capture_and_decode_with_dnstap_read() {
    require!(tool("fstrm_capture"), tool("dnstap-read"));
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("dnstap.sock");
    let file = dir.path().join("capture.fstrm");
    let mut capture = Capture {
        child: Command::new("fstrm_capture")
            .args(["-t", "protobuf:dnstap.Dnstap", "-u"])
            .arg(&socket)
            .arg("-w")
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("fstrm_capture"),
    };
    assert!(
        wait_until(Duration::from_secs(10), || socket.exists()),
        "socket created"
    );
    let config = format!(
        "{SERVER_HEAD}\n[dnstap]\nsocket = \"{}\"\nidentity = \"tap-test\"\n",
        socket.display()
    );
    let server = TestServer::start(&config);
    assert!(
        wait_until(Duration::from_secs(10), || server
            .service()
            .dnstap_stats()
            .is_some_and(|s| s.connected)),
        "connected to the consumer"
    );
    for name in ["www.example.test.", "nothing.example.test."] {
        ask(server.addr, name, RecordType::A);
    }
    assert!(
        wait_until(Duration::from_secs(10), || server
            .service()
            .dnstap_stats()
            .is_some_and(|s| s.written >= 4)),
        "four messages written"
    );
    drop(server);
    capture.stop();
    let output = Command::new("dnstap-read")
        .arg(&file)
        .output()
        .expect("dnstap-read");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.iter().filter(|l| l.contains(" AQ ")).count(),
        2,
        "{text}"
    );
    assert_eq!(
        lines.iter().filter(|l| l.contains(" AR ")).count(),
        2,
        "{text}"
    );
    assert!(text.contains("www.example.test/IN/A"), "{text}");
    assert!(text.contains("UDP"), "{text}");
}
