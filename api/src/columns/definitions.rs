//! `keel get` columns of CustomResourceDefinitions, as kubectl shows them.

use keel_schema::types::apiextensions::CustomResourceDefinition;

use super::{Columns, created_at, name};

pub(super) const CRD: Columns<CustomResourceDefinition> = Columns {
    normal: &[
        ("NAME", |c, _| name(&c.metadata)),
        ("CREATED AT", |c, _| created_at(&c.metadata)),
    ],
    wide: &[],
};
