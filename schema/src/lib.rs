//! keel's object model and everything that reads it from YAML.
//!
//! # Layout
//! - [`yaml`]: the one module that reads YAML text, into located trees ([`yaml::Node`]).
//! - [`decode`]: typed objects from located trees, every problem reported with its path.
//! - [`types`]: the Kubernetes-compatible types (`v1`, `apps/v1`, `batch/v1`).
//! - [`kinds`]: the one table of kinds, declaring [`Kind`] and [`Object`]; [`object`]: what
//!   any object offers; [`resource`]: what each kind's type says of itself; [`key`]:
//!   [`ObjectKey`], where an object lives.
//! - [`validate`]: per-object and whole-revision rules; [`defaults`]: Kubernetes defaults.
//! - [`load`]: a whole revision from its files: parse, decode, validate, default.
//! - [`selector`], [`quantity`], [`intorstr`]: label selectors, resource quantities,
//!   int-or-string values. [`string_map`]: the small sorted maps objects carry (labels,
//!   annotations, resource amounts). [`path`]: field paths; [`error`]: located errors.
//! - [`fit`]: decoded values refitted to their contents before they are kept.
//! - [`jsonschema`]: the JSON Schema editors use; [`sync_record`]: keel's record of each
//!   revision it tried.
#![forbid(unsafe_code)]

pub mod types;

pub mod cron;
pub mod decode;
pub mod defaults;
pub mod encrypted;
pub mod error;
pub mod fit;
pub mod intorstr;
pub mod jsonschema;
pub mod key;
pub mod kinds;
pub mod kustomize;
pub mod limits;
pub mod load;
pub mod object;
pub mod openapi;
pub mod ordering;
pub mod path;
pub mod quantity;
pub mod repo_config;
pub mod resource;
pub mod selector;
pub mod string_map;
pub mod sync_record;
pub mod validate;
pub mod yaml;

pub use error::ManifestError;
pub use key::ObjectKey;
pub use kinds::{Kind, KindInfo, Object, ObjectError, OfKind};
pub use load::{Collected, Manifest, Revision, SourceFile, collect_paths, load_sources};
pub use resource::{PodTemplateRef, Resource};
pub use string_map::StringMap;
pub use sync_record::{SyncRecord, SyncResult};
