//! keel's object model and everything that reads it from YAML.
//!
//! # Layout
//! - [`yaml`]: the one module that reads YAML text, into located trees ([`yaml::Node`]).
//! - [`decode`]: typed objects from located trees, every problem reported with its path.
//! - [`types`]: the Kubernetes-compatible types (`v1`, `apps/v1`, `batch/v1`).
//! - [`object`]: [`Object`], one value of any kind, and the [`KINDS`] table.
//! - [`validate`]: per-object and whole-revision rules; [`defaults`]: Kubernetes defaults.
//! - [`load`]: a whole revision from its files: parse, decode, validate, default.
//! - [`selector`], [`quantity`], [`intorstr`]: label selectors, resource quantities,
//!   int-or-string values. [`path`]: field paths; [`error`]: located errors.
//! - [`jsonschema`]: the JSON Schema editors use; [`proto`]: the node agent's gRPC API.
#![forbid(unsafe_code)]

pub mod types;

pub mod decode;
pub mod defaults;
pub mod error;
pub mod intorstr;
pub mod jsonschema;
pub mod load;
pub mod object;
pub mod path;
pub mod quantity;
pub mod repo_config;
pub mod selector;
pub mod validate;
pub mod yaml;

/// The node agent's gRPC API (`proto/agent.proto`, package `keel.agent.v1`).
pub mod proto {
    #![allow(clippy::all, clippy::pedantic)]
    tonic::include_proto!("keel.agent.v1");

    impl std::fmt::Debug for NodeDesired {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("NodeDesired")
                .field("node_name", &self.node_name)
                .field("generation", &self.generation)
                .field("pods", &self.pods.len())
                .field("config_maps", &self.config_maps.len())
                .field("secrets", &self.secrets.len())
                .field("services", &self.services.len())
                .finish()
        }
    }
}

pub use error::ManifestError;
pub use load::{Collected, Manifest, Revision, SourceFile, collect_paths, load_sources};
pub use object::{KINDS, KindInfo, Object, kind_info, lookup_kind};
