//! A LAN of node hosts for one test, so that every test's nodes run as their own network
//! hosts, as on real machines, and nothing of theirs lands in the machine's own network.

use keel_nodehost::{Lan, NodeHost};

use crate::free_port;

/// Node hosts on a LAN of their own, removed with everything in them when dropped,
/// whatever the test's outcome.
pub struct TestLan {
    pub lan: Lan,
    pub hosts: Vec<NodeHost>,
}

impl TestLan {
    /// `n` node hosts. `index` (0 to 7) tells apart the LANs of the tests of one test
    /// binary, which run at the same time; the process id, those of concurrent processes.
    pub fn new(index: u32, n: u32) -> TestLan {
        assert!(index < 8, "LAN index {index}");
        let pid = std::process::id();
        let cidr = format!("10.77.{}.0/24", (pid % 25) * 8 + index)
            .parse()
            .expect("a CIDR");
        let lan = Lan::create(cidr, &format!("kn{}{index}", pid % 1000)).expect("the LAN");
        // Pods reach the world (the machine's resolvers, for cluster DNS) as on keel up.
        lan.open_to_world().expect("the LAN's way out");
        let hosts = (1..=n).map(|i| lan.host(i).expect("a node host")).collect();
        TestLan { lan, hosts }
    }

    /// A free address on the machine's side of the LAN, for `--agent-listen`.
    pub fn agents_at(&self) -> String {
        format!("{}:{}", self.lan.gateway(), free_port())
    }
}

impl Drop for TestLan {
    fn drop(&mut self) {
        self.lan.remove(self.hosts.len() as u32);
    }
}
