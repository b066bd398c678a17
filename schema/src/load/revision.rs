//! A revision from its files: each app of keel.yaml loaded on its own (rendered, decoded,
//! validated with the rules that span objects), then summed, objects declared twice refused.

use crate::encrypted::Decrypt;
use crate::error::{ManifestError, sort_errors};
use crate::repo_config::{REPO_CONFIG_FILE, RepoConfig};
use crate::validate::FieldError;
use crate::validate::cross::{Item, validate_revision};

use super::{InMemory, Loader, Revision, SourceFile, Subject, apps, config};

/// Parses, decodes and validates each file on its own, spread over the machine's cores
/// (a large repository has thousands of files), keeping file order.
fn load_files(
    files: &[&SourceFile],
    decrypt: Option<&dyn Decrypt>,
    namespace: Option<&str>,
) -> Loader {
    let one = |part: &[&SourceFile]| {
        let mut loader = Loader {
            namespace: namespace.map(str::to_string),
            ..Loader::default()
        };
        for f in part {
            loader.file(f, decrypt);
        }
        loader
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    if files.len() < 64 || threads < 2 {
        return one(files);
    }
    let size = files.len().div_ceil(threads);
    let parts: Vec<Loader> = std::thread::scope(|scope| {
        let handles: Vec<_> = files
            .chunks(size)
            .map(|part| scope.spawn(move || one(part)))
            .collect();
        // A panic in a worker is a bug; surface it rather than lose files silently.
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    let mut all = Loader {
        namespace: namespace.map(str::to_string),
        ..Loader::default()
    };
    for part in parts {
        all.manifests.extend(part.manifests);
        all.errors.extend(part.errors);
        all.unknown_kinds.extend(part.unknown_kinds);
    }
    all
}

/// Loads a revision from its manifest files and, when the tree has one, its `keel.yaml`.
/// Kustomizations among them may read only the files given.
pub fn load_sources(files: &[SourceFile], config: Option<&SourceFile>) -> Revision {
    load_sources_with(files, config, &InMemory::new(files), None)
}

/// As [`load_sources`], with kustomizations reading files through `reader` (a revision's
/// whole tree: env files, patches, hidden files), and SOPS-encrypted files opened with
/// `decrypt` (without it, they are errors of the revision).
///
/// A folder with a kustomization owns everything below it: its objects are what it renders
/// ([`crate::kustomize`]), and the files under it are read only as it names them. With
/// keel.yaml `apps:`, each app is loaded on its own ([`load_app`]) and the revision is
/// their sum, with objects declared by two apps refused.
pub fn load_sources_with(
    files: &[SourceFile],
    config: Option<&SourceFile>,
    reader: &dyn crate::kustomize::Files,
    decrypt: Option<&dyn Decrypt>,
) -> Revision {
    let (repo_config, config_errors) = read_config(config);
    let base = config.map_or("", |c| apps::base_of(&c.name));
    let specs = apps::app_specs(&repo_config, base);
    let mut parts: Vec<Vec<&SourceFile>> = vec![Vec::new(); specs.len()];
    for f in files {
        parts[apps::owner_of(&specs, &f.name)].push(f);
    }
    let root = specs.len() - 1;
    let mut loaded: Vec<Revision> = specs[..root]
        .iter()
        .zip(&parts)
        .map(|(spec, files)| {
            let mut revision = load_app(files, &repo_config, reader, decrypt, spec);
            if files.is_empty() && !spec.allow_empty {
                let at = config.map_or(REPO_CONFIG_FILE, |c| c.name.as_str());
                let message = apps::missing_folder(spec);
                revision.errors.push(ManifestError::file(at, message));
            }
            revision
        })
        .collect();
    // Files the named apps' kustomizations read (a shared base) are theirs, not the root's.
    let left = apps::LeftToApps::new(apps::read_elsewhere(&specs, &loaded));
    let root_files: Vec<&SourceFile> = parts[root]
        .iter()
        .copied()
        .filter(|f| !left.contains(&f.name))
        .collect();
    loaded.push(load_app(
        &root_files,
        &repo_config,
        reader,
        decrypt,
        &specs[root],
    ));
    let pairs: Vec<(&apps::AppSpec, &Revision)> = specs.iter().zip(&loaded).collect();
    let duplicates = apps::duplicates(&pairs, |_| None);
    let mut revision = Revision {
        config: repo_config,
        errors: config_errors,
        ..Default::default()
    };
    revision
        .errors
        .extend(duplicates.into_iter().map(|(_, e)| e));
    for part in loaded {
        revision.manifests.extend(part.manifests);
        revision.errors.extend(part.errors);
        revision.kustomizations.extend(part.kustomizations);
    }
    sort_errors(&mut revision.errors);
    revision
}

/// keel.yaml read and checked: the config (default where it cannot be read) and its
/// located problems.
pub fn read_config(config: Option<&SourceFile>) -> (RepoConfig, Vec<ManifestError>) {
    let mut loader = Loader::default();
    let repo_config = config
        .map(|c| config::load_repo_config(c, &mut loader))
        .unwrap_or_default();
    (repo_config, loader.errors)
}

/// One app's files (names from the repository root) loaded whole under the repository's
/// `config`: parsed, rendered, decoded, validated with the rules that span objects, and
/// defaulted; namespaced objects that name no namespace get the app's. keel.yaml's own
/// problems are [`read_config`]'s, not repeated here.
pub fn load_app(
    files: &[&SourceFile],
    config: &RepoConfig,
    reader: &dyn crate::kustomize::Files,
    decrypt: Option<&dyn Decrypt>,
    app: &apps::AppSpec,
) -> Revision {
    let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
    let rendered = crate::kustomize::render_revision(reader, &names, decrypt);
    let owners: std::collections::BTreeSet<&str> = names
        .iter()
        .filter(|n| crate::kustomize::is_kustomization(n))
        .map(|n| n.rsplit_once('/').map_or("", |(dir, _)| dir))
        .collect();
    let owned = |name: &str| {
        let dir = name.rsplit_once('/').map_or("", |(dir, _)| dir);
        rendered.consumed.contains(name)
            || (!owners.is_empty() && crate::kustomize::below_any(&owners, dir))
    };
    let plain: Vec<&SourceFile> = files.iter().copied().filter(|f| !owned(&f.name)).collect();
    let mut loader = load_files(&plain, decrypt, app.namespace.as_deref());
    loader.errors.extend(rendered.problems);
    let roots = rendered.roots;
    for object in rendered.objects {
        loader.object(&object.file, object.root, false);
    }
    loader.settle_unknown_kinds(config);
    let items: Vec<Item<'_>> = loader
        .manifests
        .iter()
        .map(|m| Item {
            object: &m.object,
            origin: format!("{}:{}", m.file, m.line),
        })
        .collect();
    let mut cross: Vec<(usize, FieldError)> = validate_revision(&items);
    crate::validate::limit_range::bounds(&items, &mut cross);
    crate::validate::quota::quotas(&items, &mut cross);
    cross.extend(crate::validate::policy::check_pod_security(&items, config));
    drop(items);
    for (i, e) in cross {
        let m = &loader.manifests[i];
        let subject = Subject::of(&m.root, Some(m.object.info()));
        let (file, root) = (m.file.clone(), m.root.clone());
        loader.field_error(&file, &root, &subject, &e.path, e.message);
    }
    let mut errors = loader.errors;
    sort_errors(&mut errors);
    Revision {
        manifests: loader.manifests,
        errors,
        config: config.clone(),
        kustomizations: roots,
    }
}
