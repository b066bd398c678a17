//! The workspace's layout, as ARCHITECTURE.md promises it: every crate is in the code map,
//! and no crate has an import cycle between its modules. A cycle is counted between modules
//! that are not each other's ancestors: a child using its parent's items (a type whose
//! methods are spread over child files) is how Rust modules work, but two siblings that need
//! each other are one job in two files, or two jobs tangled.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use keel_e2e::workspace_root;
use syn::visit::Visit;

/// A module, as its path from its crate's root (`["controllers", "runtime"]`).
type ModPath = Vec<String>;

/// The workspace's members: folders with a `Cargo.toml` and a `src/`.
fn crates() -> Vec<PathBuf> {
    let root = workspace_root();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("the workspace folder")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("Cargo.toml").is_file() && p.join("src").is_dir())
        .collect();
    dirs.sort();
    dirs
}

/// Every module file of a library crate, by module path. Binaries beside a library
/// (`src/main.rs`, `src/bin/`) are crates of their own that use the library by name.
fn module_files(src: &Path) -> BTreeMap<ModPath, PathBuf> {
    let mut out = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    let has_lib = src.join("lib.rs").is_file();
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("a source folder") {
            let path = entry.expect("an entry").path();
            if path.is_dir() {
                if path != src.join("bin") {
                    stack.push(path);
                }
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs")
                || (has_lib && path == src.join("main.rs"))
            {
                continue;
            }
            let rel = path.strip_prefix(src).expect("under src");
            let mut segs: ModPath = rel
                .with_extension("")
                .iter()
                .map(|s| s.to_string_lossy().into_owned())
                .collect();
            if matches!(
                segs.last().map(String::as_str),
                Some("mod" | "lib" | "main")
            ) {
                segs.pop();
            }
            out.insert(segs, path);
        }
    }
    out
}

/// The paths one file names through `crate::`, `super::`, `self::` or a child module, with
/// `#[cfg(test)]` items left out.
#[derive(Default)]
struct Named {
    paths: Vec<Vec<String>>,
}

fn is_cfg_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("cfg") && a.parse_args::<syn::Ident>().is_ok_and(|i| i == "test")
    })
}

fn use_paths(tree: &syn::UseTree, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    match tree {
        syn::UseTree::Path(p) => {
            prefix.push(p.ident.to_string());
            use_paths(&p.tree, prefix, out);
            prefix.pop();
        }
        syn::UseTree::Name(n) => out.push([prefix.clone(), vec![n.ident.to_string()]].concat()),
        syn::UseTree::Rename(r) => out.push([prefix.clone(), vec![r.ident.to_string()]].concat()),
        syn::UseTree::Glob(_) => out.push(prefix.clone()),
        syn::UseTree::Group(g) => {
            for t in &g.items {
                use_paths(t, prefix, out);
            }
        }
    }
}

impl<'ast> Visit<'ast> for Named {
    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        if !is_cfg_test(&u.attrs) {
            use_paths(&u.tree, &mut Vec::new(), &mut self.paths);
        }
    }

    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        if !is_cfg_test(&m.attrs) {
            syn::visit::visit_item_mod(self, m);
        }
    }

    fn visit_item_fn(&mut self, f: &'ast syn::ItemFn) {
        if !is_cfg_test(&f.attrs) {
            syn::visit::visit_item_fn(self, f);
        }
    }

    fn visit_item_impl(&mut self, i: &'ast syn::ItemImpl) {
        if !is_cfg_test(&i.attrs) {
            syn::visit::visit_item_impl(self, i);
        }
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        let segs: Vec<String> = p.segments.iter().map(|s| s.ident.to_string()).collect();
        if segs.len() > 1 && matches!(segs[0].as_str(), "crate" | "super" | "self") {
            self.paths.push(segs);
        }
        syn::visit::visit_path(self, p);
    }
}

/// `path`, named in module `here`, as a path from the crate root; `None` when it leaves
/// the crate (another crate, std).
fn absolute(here: &[String], path: &[String], modules: &BTreeSet<ModPath>) -> Option<ModPath> {
    let (first, rest) = path.split_first()?;
    match first.as_str() {
        "crate" => Some(rest.to_vec()),
        "self" => Some([here, rest].concat()),
        "super" => {
            let mut base = here.to_vec();
            let mut rest = path;
            while let Some(("super", tail)) = rest.split_first().map(|(h, t)| (h.as_str(), t)) {
                base.pop();
                rest = tail;
            }
            Some([base.as_slice(), rest].concat())
        }
        _ => {
            let child = [here, &path[..1]].concat();
            modules.contains(&child).then(|| [here, path].concat())
        }
    }
}

/// The module a path lands in: its longest prefix that is a module.
fn owner(path: &[String], modules: &BTreeSet<ModPath>) -> ModPath {
    (0..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|p| modules.contains(p))
        .unwrap_or_default()
}

fn related(a: &[String], b: &[String]) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

/// Each module's edges to modules that are neither it, its ancestors nor its descendants.
fn edges(src: &Path) -> BTreeMap<ModPath, BTreeSet<ModPath>> {
    let files = module_files(src);
    let modules: BTreeSet<ModPath> = files.keys().cloned().collect();
    files
        .iter()
        .map(|(module, file)| {
            let text = std::fs::read_to_string(file).expect("a source file");
            let ast = syn::parse_file(&text)
                .unwrap_or_else(|e| panic!("{} does not parse: {e}", file.display()));
            let mut named = Named::default();
            named.visit_file(&ast);
            let to = named
                .paths
                .iter()
                .filter_map(|p| absolute(module, p, &modules))
                .map(|p| owner(&p, &modules))
                .filter(|t| !related(module, t))
                .collect();
            (module.clone(), to)
        })
        .collect()
}

/// Groups of modules that reach each other (strongly connected, more than one).
fn cycles(edges: &BTreeMap<ModPath, BTreeSet<ModPath>>) -> Vec<BTreeSet<ModPath>> {
    let reach = |from: &ModPath| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.clone()];
        while let Some(m) = todo.pop() {
            for next in edges.get(&m).into_iter().flatten() {
                if seen.insert(next.clone()) {
                    todo.push(next.clone());
                }
            }
        }
        seen
    };
    let reached: BTreeMap<&ModPath, BTreeSet<ModPath>> =
        edges.keys().map(|m| (m, reach(m))).collect();
    let mut groups: Vec<BTreeSet<ModPath>> = Vec::new();
    for (m, from_m) in &reached {
        let group: BTreeSet<ModPath> = from_m
            .iter()
            .filter(|other| reached.get(other).is_some_and(|r| r.contains(*m)))
            .cloned()
            .collect();
        if !group.is_empty() && !groups.iter().any(|g| g.contains(*m)) {
            groups.push(group);
        }
    }
    groups
}

fn show(m: &ModPath) -> String {
    if m.is_empty() {
        "<crate root>".into()
    } else {
        m.join("::")
    }
}

#[test]
fn no_crate_has_an_import_cycle_between_its_modules() {
    let mut found = Vec::new();
    for dir in crates() {
        let edges = edges(&dir.join("src"));
        assert!(
            edges.contains_key(&ModPath::new()),
            "{}: no crate root found",
            dir.display()
        );
        for group in cycles(&edges) {
            let links: Vec<String> = group
                .iter()
                .flat_map(|m| {
                    edges[m]
                        .iter()
                        .filter(|t| group.contains(*t))
                        .map(move |t| format!("{} -> {}", show(m), show(t)))
                })
                .collect();
            found.push(format!("{}: {}", dir.display(), links.join(", ")));
        }
    }
    assert!(
        found.is_empty(),
        "modules that import each other:\n  {}",
        found.join("\n  ")
    );
}

#[test]
fn a_cycle_between_sibling_modules_is_found() {
    // The check itself, on a small tree: `a` and `b` use each other, `c` only uses its parent.
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path();
    std::fs::create_dir_all(src.join("a")).expect("mkdir");
    let files = [
        ("lib.rs", "mod a; mod b;"),
        ("a/mod.rs", "mod c; use crate::b::B; pub struct A;"),
        ("a/c.rs", "use super::A;"),
        ("b.rs", "pub struct B(crate::a::A);"),
    ];
    for (name, text) in files {
        std::fs::write(src.join(name), text).expect("write");
    }
    let edges = edges(src);
    let found = cycles(&edges);
    let a_b: BTreeSet<ModPath> = [vec!["a".to_string()], vec!["b".to_string()]].into();
    assert_eq!(found, vec![a_b]);
}

#[test]
fn every_crate_is_in_the_code_map() {
    let map =
        std::fs::read_to_string(workspace_root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let missing: Vec<String> = crates()
        .iter()
        .map(|d| {
            d.file_name()
                .expect("a name")
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| !map.contains(&format!("`{name}/`")))
        .collect();
    assert!(
        missing.is_empty(),
        "crates ARCHITECTURE.md's code map does not name: {missing:?}"
    );
}
