//! The real `failoverd` binary as a node of the cluster: `ip netns exec NS failoverd
//! serve|probe …`, its stderr kept line by line, killed on drop; SIGKILL, SIGHUP and
//! restart helpers.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// The binary under test: `FAILOVERD_BIN` if set, else the one cargo built.
pub fn binary() -> String {
    std::env::var("FAILOVERD_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_failoverd").to_owned())
}

/// Lines a process wrote to stderr, shared with the thread reading them.
#[derive(Default)]
struct LogLines {
    lines: Mutex<Lines>,
    grew: Condvar,
}

/// The lines, and whether stderr has closed (the process exited).
#[derive(Default)]
struct Lines {
    lines: Vec<String>,
    closed: bool,
}

/// How to (re)start a node.
#[derive(Clone, Debug)]
pub struct Launch {
    /// The namespace it runs in.
    pub ns: String,
    /// Arguments after the binary (`serve --config …`).
    pub args: Vec<String>,
}

/// A running (or killed) `failoverd` process.
pub struct Node {
    /// Name for messages (`s1`, `a4`).
    pub name: String,
    launch: Launch,
    child: Option<Child>,
    log: Arc<LogLines>,
    /// Lines of earlier incarnations (before restarts), for failure output.
    history: Vec<String>,
}

impl Node {
    /// Starts `launch` without waiting for anything.
    pub fn spawn(name: &str, launch: Launch) -> Self {
        let mut node = Self {
            name: name.to_owned(),
            launch,
            child: None,
            log: Arc::new(LogLines::default()),
            history: Vec::new(),
        };
        node.start_process();
        node
    }

    fn start_process(&mut self) {
        let mut command = Command::new("ip");
        // SAFETY: prctl is async-signal-safe; it only sets this child's death signal,
        // so a test binary killed before its `Drop` runs takes its nodes with it.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = command
            .args(["netns", "exec", &self.launch.ns])
            .arg(binary())
            .args(&self.launch.args)
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.name));
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(LogLines::default());
        let reader = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                reader.lines.lock().unwrap().lines.push(line);
                reader.grew.notify_all();
            }
            reader.lines.lock().unwrap().closed = true;
            reader.grew.notify_all();
        });
        self.child = Some(child);
        self.log = log;
    }

    /// Waits (until `within` has passed, or the process has exited) for a line
    /// matching `matches` among the lines from index `from` on; returns it.
    pub fn wait_for_line(
        &self,
        from: usize,
        within: Duration,
        matches: impl Fn(&str) -> bool,
    ) -> Option<String> {
        let deadline = Instant::now() + within;
        let mut lines = self.log.lines.lock().unwrap();
        let mut seen = from;
        loop {
            if let Some(line) = lines.lines.iter().skip(seen).find(|l| matches(l)) {
                return Some(line.clone());
            }
            if lines.closed {
                return None;
            }
            seen = lines.lines.len().max(from);
            let left = deadline.checked_duration_since(Instant::now())?;
            lines = self.log.grew.wait_timeout(lines, left).unwrap().0;
        }
    }

    /// Waits for a line containing `text` among the lines from index `from` on.
    pub fn wait_for_log_from(&self, from: usize, text: &str, within: Duration) -> Option<String> {
        self.wait_for_line(from, within, |l| l.contains(text))
    }

    /// Waits for a line containing `text` since this process started.
    pub fn wait_for_log(&self, text: &str, within: Duration) -> Option<String> {
        self.wait_for_log_from(0, text, within)
    }

    /// Waits for a line with the word `word` (not a longer word containing it, such
    /// as "already" for "ready") since this process started.
    pub fn wait_for_word(&self, word: &str, within: Duration) -> Option<String> {
        self.wait_for_line(0, within, |line| {
            line.split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
                .any(|w| w == word)
        })
    }

    /// How many lines this process has written (a mark for [`Node::wait_for_log_from`]).
    pub fn log_mark(&self) -> usize {
        self.log.lines.lock().unwrap().lines.len()
    }

    /// The last `n` lines of every incarnation.
    pub fn tail(&self, n: usize) -> Vec<String> {
        let mut all = self.history.clone();
        all.extend(self.log.lines.lock().unwrap().lines.iter().cloned());
        let skip = all.len().saturating_sub(n);
        all.split_off(skip)
    }

    /// The process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process is running (not exited, not killed).
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Sends `signal` to the process.
    pub fn signal(&self, signal: libc::c_int) {
        let pid = self
            .pid()
            .unwrap_or_else(|| panic!("{} is not running", self.name));
        // SAFETY: kill has no memory preconditions; the pid is our child's.
        let rc = unsafe { libc::kill(pid as libc::pid_t, signal) };
        assert_eq!(rc, 0, "kill({pid}, {signal}) for {}", self.name);
    }

    /// Sends SIGHUP (reload).
    pub fn hangup(&self) {
        self.signal(libc::SIGHUP);
    }

    /// SIGKILLs the process and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let lines = std::mem::take(&mut self.log.lines.lock().unwrap().lines);
        self.history.extend(lines);
        self.history.push(format!("---- {} killed ----", self.name));
    }

    /// Starts the process again (after [`Node::kill`]), with `args` if given.
    pub fn restart(&mut self, args: Option<Vec<String>>) {
        if self.child.is_some() {
            self.kill();
        }
        if let Some(args) = args {
            self.launch.args = args;
        }
        self.start_process();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Arguments of `failoverd serve` for a server node.
pub fn serve_args(config: &Path, vantage: &str, dns: &str, admin: &str) -> Vec<String> {
    vec![
        "serve".into(),
        "--config".into(),
        config.display().to_string(),
        "--listen".into(),
        dns.into(),
        "--admin-listen".into(),
        admin.into(),
        "--vantage".into(),
        vantage.into(),
    ]
}

/// Arguments of `failoverd probe` for an agent node.
pub fn probe_args(config: &Path, vantage: &str) -> Vec<String> {
    vec![
        "probe".into(),
        "--config".into(),
        config.display().to_string(),
        "--vantage".into(),
        vantage.into(),
    ]
}
