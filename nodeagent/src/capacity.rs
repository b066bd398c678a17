//! What the node offers: CPU and memory read from the machine, unless the flags say otherwise.

/// CPU in millicores: one core is 1000.
pub fn cpu_millis() -> i64 {
    std::thread::available_parallelism()
        .map(|n| n.get() as i64 * 1000)
        .unwrap_or(1000)
}

/// Memory in bytes, from `/proc/meminfo`'s `MemTotal`.
pub fn memory_bytes() -> Option<i64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    parse_meminfo(&text)
}

fn parse_meminfo(text: &str) -> Option<i64> {
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: i64 = line
        .trim_start_matches("MemTotal:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    kib.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    #[test]
    fn meminfo() {
        let text = "MemTotal:        8039340 kB\nMemFree:          123 kB\n";
        assert_eq!(super::parse_meminfo(text), Some(8039340 * 1024));
        assert_eq!(super::parse_meminfo("nothing"), None);
    }
}
