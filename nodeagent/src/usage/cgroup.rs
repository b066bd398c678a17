//! A container's CPU and memory use, read straight from its cgroup files (cheaper than the
//! engine's stats API, which samples for a second per call): the cgroup of the container's
//! first process, from `/proc/PID/cgroup`, under `/sys/fs/cgroup`, v1 or v2.
//!
//! Memory is the working set, as the kubelet (cAdvisor) reports it and `kubectl top` shows:
//! the memory in use less the inactive file cache, which the kernel drops first.

use std::path::{Path, PathBuf};

/// Where the cgroup hierarchies are mounted.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// One reading of a container's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reading {
    /// CPU time used since the container started, in nanoseconds.
    pub cpu_ns: u64,
    /// Working set, in bytes.
    pub memory_bytes: u64,
}

/// The cgroup paths of a process, per hierarchy.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct CgroupPaths {
    /// The unified (v2) hierarchy's path, when the process is in one.
    pub unified: Option<String>,
    /// The v1 `cpuacct` controller's path.
    pub cpuacct: Option<String>,
    /// The v1 `memory` controller's path.
    pub memory: Option<String>,
}

/// `/proc/PID/cgroup`'s lines: `ID:CONTROLLERS:PATH` (v2: `0::PATH`).
pub fn parse_proc_cgroup(text: &str) -> CgroupPaths {
    let mut paths = CgroupPaths::default();
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if controllers.is_empty() {
            paths.unified = Some(path.to_string());
        }
        for controller in controllers.split(',') {
            match controller {
                "cpuacct" => paths.cpuacct = Some(path.to_string()),
                "memory" => paths.memory = Some(path.to_string()),
                _ => {}
            }
        }
    }
    paths
}

/// A value of a `KEY VALUE` stat file (`memory.stat`, `cpu.stat`).
fn stat_value(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok())?
    })
}

/// The working set: `usage` less the inactive file cache (`inactive_file` on v2,
/// `total_inactive_file` on v1), never below zero.
pub fn working_set(usage: u64, memory_stat: &str, v2: bool) -> u64 {
    let key = if v2 {
        "inactive_file"
    } else {
        "total_inactive_file"
    };
    usage.saturating_sub(stat_value(memory_stat, key).unwrap_or(0))
}

/// CPU time from a v2 `cpu.stat` (`usage_usec`), in nanoseconds.
pub fn cpu_v2(cpu_stat: &str) -> Option<u64> {
    stat_value(cpu_stat, "usage_usec").map(|us| us.saturating_mul(1000))
}

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

fn read_number(path: &Path) -> Option<u64> {
    read(path)?.trim().parse().ok()
}

/// Under the root, the path a hierarchy gives (absolute in the hierarchy).
fn under(root: &Path, mount: &str, path: &str) -> PathBuf {
    root.join(mount).join(path.trim_start_matches('/'))
}

/// The reading of process `pid`'s cgroup; `None` when it cannot be read (the process
/// ended, or the cgroup files are not mounted here).
pub fn read_pid(pid: u32) -> Option<Reading> {
    let text = read(Path::new(&format!("/proc/{pid}/cgroup")))?;
    read_paths(Path::new(CGROUP_ROOT), &parse_proc_cgroup(&text))
}

/// The reading of the cgroups `paths` names, under `root`.
pub fn read_paths(root: &Path, paths: &CgroupPaths) -> Option<Reading> {
    if let (Some(cpu), Some(memory)) = (&paths.cpuacct, &paths.memory) {
        let cpu_ns = read_number(&under(root, "cpuacct", cpu).join("cpuacct.usage"))?;
        let dir = under(root, "memory", memory);
        let usage = read_number(&dir.join("memory.usage_in_bytes"))?;
        let stat = read(&dir.join("memory.stat")).unwrap_or_default();
        return Some(Reading {
            cpu_ns,
            memory_bytes: working_set(usage, &stat, false),
        });
    }
    let dir = under(root, "", paths.unified.as_deref()?);
    let cpu_ns = cpu_v2(&read(&dir.join("cpu.stat"))?)?;
    let usage = read_number(&dir.join("memory.current"))?;
    let stat = read(&dir.join("memory.stat")).unwrap_or_default();
    Some(Reading {
        cpu_ns,
        memory_bytes: working_set(usage, &stat, true),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_hierarchies_of_v1_and_v2() {
        let v1 = "12:pids:/docker/abc\n4:cpu,cpuacct:/docker/abc\n9:memory:/docker/abc\n0::/\n";
        let paths = parse_proc_cgroup(v1);
        assert_eq!(paths.cpuacct.as_deref(), Some("/docker/abc"));
        assert_eq!(paths.memory.as_deref(), Some("/docker/abc"));
        let v2 = parse_proc_cgroup("0::/system.slice/docker-abc.scope\n");
        assert_eq!(
            v2.unified.as_deref(),
            Some("/system.slice/docker-abc.scope")
        );
        assert_eq!(v2.cpuacct, None);
        assert_eq!(parse_proc_cgroup("garbage"), CgroupPaths::default());
    }

    #[test]
    fn reads_cpu_and_the_working_set_from_files() {
        let root = tempfile::tempdir().unwrap();
        let v2 = root.path().join("kubepods/c1");
        std::fs::create_dir_all(&v2).unwrap();
        std::fs::write(v2.join("cpu.stat"), "usage_usec 2500\nuser_usec 2000\n").unwrap();
        std::fs::write(v2.join("memory.current"), "10485760\n").unwrap();
        std::fs::write(v2.join("memory.stat"), "anon 4096\ninactive_file 4194304\n").unwrap();
        let paths = CgroupPaths {
            unified: Some("/kubepods/c1".into()),
            ..Default::default()
        };
        assert_eq!(
            read_paths(root.path(), &paths),
            Some(Reading {
                cpu_ns: 2_500_000,
                memory_bytes: 6_291_456
            })
        );
        let cpu = root.path().join("cpuacct/docker/c2");
        let memory = root.path().join("memory/docker/c2");
        std::fs::create_dir_all(&cpu).unwrap();
        std::fs::create_dir_all(&memory).unwrap();
        std::fs::write(cpu.join("cpuacct.usage"), "123456789\n").unwrap();
        std::fs::write(memory.join("memory.usage_in_bytes"), "1000\n").unwrap();
        std::fs::write(memory.join("memory.stat"), "total_inactive_file 4000\n").unwrap();
        let paths = CgroupPaths {
            cpuacct: Some("/docker/c2".into()),
            memory: Some("/docker/c2".into()),
            unified: Some("/".into()),
        };
        assert_eq!(
            read_paths(root.path(), &paths),
            Some(Reading {
                cpu_ns: 123_456_789,
                memory_bytes: 0
            }),
            "a working set never goes below zero"
        );
        assert_eq!(read_paths(root.path(), &CgroupPaths::default()), None);
    }
}
