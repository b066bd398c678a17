//! What a commit declares, read from git once and kept while object pages of that commit
//! are shown (a revision of 10,000 objects takes a moment to read).

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::Mutex;

use keel_schema::{Object, ObjectKey};

/// Where git declares an object, and what it says.
pub struct Declaration {
    pub file: String,
    pub line: u32,
    pub object: Object,
}

/// Every object a commit declares, by key.
type ByKey = Arc<HashMap<ObjectKey, Declaration>>;

/// The declarations of the last commit read. The lock is held while a commit is read, so
/// pages asking at once wait for one read instead of each reading the repository.
#[derive(Default)]
pub struct Declarations(Mutex<Option<(String, ByKey)>>);

impl Declarations {
    /// The declarations of `commit`, read from git unless they were the last read.
    pub async fn of(
        &self,
        source: &Arc<crate::source::GitSource>,
        commit: &str,
    ) -> Result<ByKey, String> {
        let mut last = self.0.lock().await;
        if let Some((c, d)) = last.as_ref()
            && c == commit
        {
            return Ok(d.clone());
        }
        let (source, wanted) = (source.clone(), commit.to_string());
        let read = tokio::task::spawn_blocking(move || {
            let everything = |_: &keel_schema::load::apps::AppSpec, _: &str| true;
            source
                .load_apps(&wanted, &|_| Vec::new(), &everything)
                .map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())??;
        let declared: HashMap<ObjectKey, Declaration> = read
            .apps
            .into_iter()
            .filter_map(|a| a.revision)
            .flat_map(|r| r.manifests)
            .map(|m| {
                let key = ObjectKey::of(&m.object);
                let declaration = Declaration {
                    file: m.file.to_string(),
                    line: m.line,
                    object: m.object,
                };
                (key, declaration)
            })
            .collect();
        let declared = Arc::new(declared);
        *last = Some((commit.to_string(), declared.clone()));
        Ok(declared)
    }
}
