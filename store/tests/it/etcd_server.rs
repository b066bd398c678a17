//! A real etcd for one test. Without the `etcd` binary the etcd tests skip with a printed
//! reason, unless `KEEL_REQUIRE_ETCD=1` (as `scripts/test` and CI set), where they fail.

use keel_store::etcd_process::EtcdProcess;

pub fn start() -> Option<EtcdProcess> {
    let required = std::env::var("KEEL_REQUIRE_ETCD").is_ok_and(|v| v == "1");
    if !EtcdProcess::available() {
        assert!(
            !required,
            "KEEL_REQUIRE_ETCD=1 but the etcd binary is not installed (apt-get install etcd-server)"
        );
        eprintln!(
            "skipping: etcd is not installed (apt-get install etcd-server); set KEEL_REQUIRE_ETCD=1 to fail instead"
        );
        return None;
    }
    Some(EtcdProcess::start().expect("etcd starts"))
}
