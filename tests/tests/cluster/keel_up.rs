//! `keel up` as a test runs it: one at a time (it holds a lock per machine), its output in
//! a file, stopped with SIGINT when dropped.

use std::path::Path;
use std::process::{Child, Command};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use keel_e2e::binary;

/// The turn to run keel up in this test process.
static TURN: Mutex<()> = Mutex::new(());

/// `keel up`, run as the README's demo runs it: output to a file, stopped with SIGINT.
pub struct Up {
    /// Held while it runs: one keel up per machine, so the tests that run one take turns.
    _turn: MutexGuard<'static, ()>,
    child: Child,
    out: std::path::PathBuf,
    killed: bool,
    /// Where the API is served over HTTPS (`--tls-listen`): kubectl's address.
    pub tls: String,
}

impl Up {
    pub fn start(data: &Path, listen: &str, agent_port: &str) -> Up {
        Up::start_with(data, listen, agent_port, &[])
    }

    /// As [`Up::start`], with `extra` flags (`--repo`, say).
    pub fn start_with(data: &Path, listen: &str, agent_port: &str, extra: &[&str]) -> Up {
        let turn = TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let out = data.with_extension(format!("{}.out", std::process::id()));
        let file = std::fs::File::create(&out).expect("output file");
        // A port of its own, not 7443: other programs on the machine may hold that.
        let tls = format!("127.0.0.1:{}", keel_e2e::free_port());
        let child = Command::new(binary("keel"))
            .args(["up", "--listen", listen, "--agent-port", agent_port])
            .args(["--tls-listen", &tls])
            .arg("--data-dir")
            .arg(data)
            .args(extra)
            .stdout(file.try_clone().expect("dup"))
            .stderr(file)
            .spawn()
            .expect("keel up starts");
        Up {
            _turn: turn,
            child,
            out,
            killed: false,
            tls,
        }
    }

    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    pub fn wait_output(&self, what: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        while !self.output().contains(what) {
            assert!(
                Instant::now() < deadline,
                "keel up did not print {what:?}:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// kill -9, as the OOM killer or a lost terminal's SIGKILL would end it.
    /// What it leaves behind stays for the next run to adopt: dropping it removes nothing.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.killed = true;
    }

    /// Ctrl-C, and the exit status.
    pub fn interrupt(&mut self) -> Option<i32> {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("keel up did not stop on SIGINT:\n{}", self.output());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.interrupt();
        }
        // Only a run that held the machine's keel up lock made these; another (a developer's
        // demo) is left alone.
        if self.killed || self.output().contains("another keel up is running") {
            return;
        }
        for node in ["local-1", "local-2", "local-3"] {
            keel_cli::up::remove_containers(node);
        }
    }
}
