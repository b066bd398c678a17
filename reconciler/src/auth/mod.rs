//! Who may do what: the cluster PKI agents authenticate with ([`pki`]), the bootstrap
//! tokens new nodes join with ([`join_tokens`]), the certificates each node's name is bound
//! to ([`node_bindings`]), and the HTTP API's bearer token ([`api_token`]).

pub mod api_token;
pub mod join_tokens;
pub mod keel_secret;
pub mod node_bindings;
pub mod pki;
