//! Security end to end, with a real `keel server`, a real `keel-agent` on Docker and real TLS:
//! nobody but the control plane commands an agent, no node speaks for another, join tokens
//! are checked, and no Secret value appears in anything keel prints or logs.

mod agent;
mod exhaustion;
mod identity;
mod mtls;
mod privileges;
mod renewal;
mod secrets;
