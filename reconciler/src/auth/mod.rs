//! Who may do what: the cluster PKI agents authenticate with ([`pki`]), the tokens kept in
//! the store ([`stored_tokens`]: join tokens new nodes join with, view tokens people read
//! the API with), the certificates each node's name is bound to ([`node_bindings`]), and
//! the HTTP API's admin token ([`api_token`]).

pub mod api_token;
pub mod keel_secret;
pub mod node_bindings;
pub mod pki;
pub mod stored_tokens;
