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
//! - [`jsonschema`]: the JSON Schema editors use.
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

pub use error::ManifestError;
pub use load::{Collected, Manifest, Revision, SourceFile, collect_paths, load_sources};
pub use object::{KINDS, KindInfo, Object, kind_info, lookup_kind};
