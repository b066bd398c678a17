//! Benchmarks that program nftables run in a network namespace of their own, so they never
//! touch the machine's ruleset: the process runs itself again under `unshare --net` (as
//! root), with only `lo`, which it brings up.

/// Returns in the namespace: at once when already there, else after running this program
/// again inside one and exiting with its status. `None` when that cannot be done (not root,
/// no `unshare`): the caller skips what needs the kernel.
pub fn enter() -> Option<()> {
    const MARK: &str = "KEEL_BENCH_NETNS";
    if std::env::var_os(MARK).is_some() {
        let up = std::process::Command::new("ip")
            .args(["link", "set", "lo", "up"])
            .status();
        return up.is_ok_and(|s| s.success()).then_some(());
    }
    use std::os::unix::fs::MetadataExt;
    // /proc/self belongs to the process's effective user.
    if std::fs::metadata("/proc/self").map_or(true, |m| m.uid() != 0) {
        eprintln!("not root: nftables figures skipped");
        return None;
    }
    let me = std::env::current_exe().ok()?;
    let status = std::process::Command::new("unshare")
        .arg("--net")
        .arg("--")
        .arg(me)
        .args(std::env::args_os().skip(1))
        .env(MARK, "1")
        .status();
    match status {
        Ok(s) if s.success() => std::process::exit(0),
        Ok(s) => {
            eprintln!("the benchmark in its own network namespace failed: {s}");
            std::process::exit(s.code().unwrap_or(1));
        }
        Err(e) => {
            eprintln!("cannot run `unshare --net` ({e}); nftables figures skipped");
            None
        }
    }
}
