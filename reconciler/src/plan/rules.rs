//! The rules `keel server` applies beyond the diff, so a plan shows what will really happen:
//! objects annotated `keel.dev/prune: disabled` are never deleted, and a revision that would
//! delete every applied object (keeping none) is refused unless `allowEmpty`.

use keel_schema::Object;

use super::diff::{Action, Change};

/// The annotation that keeps an object from being pruned.
pub const PRUNE: &str = "keel.dev/prune";

fn prune_disabled(o: &Object) -> bool {
    o.meta().annotation(PRUNE) == Some("disabled")
}

/// What the rules did to a plan.
#[derive(Debug, Default)]
pub struct Verdict {
    pub notes: Vec<String>,
    /// The server would refuse the revision: nothing of it would be applied.
    pub refused: bool,
}

/// Drops deletions keel would not make and says whether the revision would be refused.
/// `old` is what runs (or the base revision), `changes` the diff to `new`.
pub fn apply_rules(old: &[Object], changes: &mut Vec<Change>, allow_empty: bool) -> Verdict {
    let mut verdict = Verdict::default();
    changes.retain(|c| match (&c.action, &c.old) {
        (Action::Delete, Some(o)) if prune_disabled(o) => {
            verdict.notes.push(format!(
                "{} stays: it is annotated keel.dev/prune: disabled",
                keel_store::ObjectKey::of(o)
            ));
            false
        }
        _ => true,
    });
    let deleted = changes
        .iter()
        .filter(|c| c.action == Action::Delete)
        .count();
    let deleted_or_kept = |o: &Object| {
        prune_disabled(o)
            || changes.iter().any(|c| {
                c.action == Action::Delete
                    && c.old.as_ref().is_some_and(|d| {
                        d.kind() == o.kind()
                            && d.namespace() == o.namespace()
                            && d.name() == o.name()
                    })
            })
    };
    let survivors = old.iter().filter(|o| !deleted_or_kept(o)).count();
    if deleted > 0 && survivors == 0 && !allow_empty {
        verdict.refused = true;
        verdict.notes.push(format!(
            "keel server would refuse this revision: it deletes every applied object ({deleted}) and keeps none; set allowEmpty: true in keel.yaml if that is really meant"
        ));
    }
    verdict
}
