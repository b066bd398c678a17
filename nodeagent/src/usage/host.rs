//! The node's own CPU and memory use, from `/proc/stat` and `/proc/meminfo` (what the
//! kubelet reports as the node's usage: the whole machine, not only its pods).

/// Clock ticks per second of `/proc/stat` (`USER_HZ`, 100 on Linux everywhere).
const TICKS_PER_SECOND: u64 = 100;

/// CPU time spent busy since boot, all CPUs, in nanoseconds: the first `cpu` line of
/// `/proc/stat` less idle and I/O wait (guest time is already inside user time).
pub fn cpu_busy_ns(stat: &str) -> Option<u64> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|t| t.parse().unwrap_or(0))
        .collect();
    // user nice system idle iowait irq softirq steal [guest guest_nice]
    let busy: u64 = [0, 1, 2, 5, 6, 7]
        .iter()
        .filter_map(|i| ticks.get(*i))
        .sum();
    Some(busy.saturating_mul(1_000_000_000 / TICKS_PER_SECOND))
}

/// Memory in use, in bytes: `MemTotal` less `MemAvailable` of `/proc/meminfo`.
pub fn memory_in_use(meminfo: &str) -> Option<u64> {
    let kib = |key: &str| -> Option<u64> {
        meminfo.lines().find_map(|l| {
            let rest = l.strip_prefix(key)?.strip_prefix(':')?;
            rest.split_whitespace().next()?.parse().ok()
        })
    };
    Some(kib("MemTotal")?.saturating_sub(kib("MemAvailable")?) * 1024)
}

/// This machine's reading now, when `/proc` can be read.
pub fn read() -> Option<super::cgroup::Reading> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    Some(super::cgroup::Reading {
        cpu_ns: cpu_busy_ns(&stat)?,
        memory_bytes: memory_in_use(&meminfo)?,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_busy_cpu_and_memory_in_use() {
        let stat = "cpu  100 5 50 1000 20 3 2 1 0 0\ncpu0 50 2 25 500 10 1 1 0 0 0\n";
        // user + nice + system + irq + softirq + steal = 161 ticks = 1.61 s.
        assert_eq!(super::cpu_busy_ns(stat), Some(1_610_000_000));
        let meminfo =
            "MemTotal:        8000000 kB\nMemFree:  100 kB\nMemAvailable:    6000000 kB\n";
        assert_eq!(super::memory_in_use(meminfo), Some(2_000_000 * 1024));
        assert_eq!(super::memory_in_use("MemTotal: 1 kB\n"), None);
        assert_eq!(super::cpu_busy_ns("intr 1 2\n"), None);
    }
}
