use super::*;

#[test]
fn host_paths_must_be_under_an_allowed_prefix() {
    let allowed = vec![PathBuf::from("/srv/data")];
    assert!(under_allowed(Path::new("/srv/data/x"), &allowed));
    assert!(under_allowed(Path::new("/srv/data"), &allowed));
    assert!(!under_allowed(Path::new("/srv/database"), &allowed));
    assert!(!under_allowed(Path::new("/srv/data/../../etc"), &allowed));
    assert!(!under_allowed(Path::new("srv/data"), &allowed));
    assert!(!under_allowed(Path::new("/srv/data"), &[]));
}

#[test]
fn or_create_host_paths_never_create_through_a_link() {
    let root = tempfile::tempdir().unwrap();
    let allowed = root.path().join("allowed");
    let outside = root.path().join("outside");
    std::fs::create_dir_all(&allowed).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    let allow = std::slice::from_ref(&allowed);
    let source = |path: &Path, type_: &str| HostPathVolumeSource {
        path: path.to_string_lossy().into_owned(),
        type_: Some(type_.to_string()),
    };
    // A dangling link whose target is outside: nothing is created there.
    std::os::unix::fs::symlink(outside.join("planted"), allowed.join("dangling")).unwrap();
    let err = host_path(
        "v",
        &source(&allowed.join("dangling"), "FileOrCreate"),
        allow,
    )
    .unwrap_err();
    assert!(err.contains("outside the allowed host paths"), "{err}");
    assert!(
        !outside.join("planted").exists(),
        "created through the link"
    );
    // A linked folder on the way: refused before anything is made beyond it.
    std::os::unix::fs::symlink(&outside, allowed.join("linked")).unwrap();
    for type_ in ["FileOrCreate", "DirectoryOrCreate"] {
        let err = host_path("v", &source(&allowed.join("linked/a/b"), type_), allow).unwrap_err();
        assert!(
            err.contains("outside the allowed host paths"),
            "{type_}: {err}"
        );
        assert!(
            !outside.join("a").exists(),
            "{type_}: created through the link"
        );
    }
    // Even when the link appears after those checks (swapped in by a container sharing
    // the folder), creating does not follow it.
    for kind in [Create::File, Create::Directory] {
        let err = create_beneath(&allowed.join("linked/a/b"), allow, kind).unwrap_err();
        assert!(err.contains("symbolic link"), "{err}");
        let left = create_beneath(&allowed.join("dangling"), allow, kind);
        assert!(
            left.is_ok(),
            "an existing entry is left to the checks after"
        );
        assert!(!outside.join("a").exists() && !outside.join("planted").exists());
    }
    // Plain paths are made, folders and all, and taken when they exist.
    for (path, type_) in [
        ("new/dir", "DirectoryOrCreate"),
        ("new/sub/file", "FileOrCreate"),
    ] {
        let path = allowed.join(path);
        let v = host_path("v", &source(&path, type_), allow).unwrap();
        assert_eq!(v.path, std::fs::canonicalize(&path).unwrap());
        host_path("v", &source(&path, type_), allow).unwrap();
    }
    assert!(allowed.join("new/dir").is_dir());
    assert!(allowed.join("new/sub/file").is_file());
}

#[test]
fn symlinks_cannot_lead_a_sub_path_or_host_path_out() {
    let root = tempfile::tempdir().unwrap();
    let volume = root.path().join("vol");
    std::fs::create_dir_all(volume.join("inside")).unwrap();
    std::os::unix::fs::symlink("/", volume.join("escape")).unwrap();
    let v = HostVolume {
        path: volume.clone(),
        read_only: false,
        host_root: None,
    };
    let volume = canonical(&volume).unwrap();
    let inside = v.source(Some("inside")).unwrap().unwrap();
    assert_eq!((inside.root, inside.rel), (volume.clone(), "inside".into()));
    // The volume's own folder is mounted as it is.
    assert_eq!(v.source(None).unwrap(), None);
    let err = v.source(Some("escape")).unwrap_err();
    assert!(err.contains("resolves outside its volume"), "{err}");
    let marker = format!("keel-must-not-exist-{}", std::process::id());
    assert!(v.source(Some(&format!("escape/{marker}"))).is_err());
    // Missing: made by the pinning in a writable volume, an error in a read-only one.
    let missing = v.source(Some("new/dir")).unwrap().unwrap();
    assert_eq!(missing.rel, Path::new("new/dir"));
    assert!(missing.create);
    let read_only = HostVolume {
        read_only: true,
        ..v.clone()
    };
    let err = read_only.source(Some("new")).unwrap_err();
    assert!(err.contains("does not exist"), "{err}");
    // A hostPath is pinned whole, from the allowed prefix it is under.
    let host = HostVolume {
        path: volume.join("inside"),
        read_only: false,
        host_root: Some(volume.clone()),
    };
    let whole = host.source(None).unwrap().unwrap();
    assert_eq!((whole.root, whole.rel), (volume.clone(), "inside".into()));
    let sub = host.source(Some("x")).unwrap().unwrap();
    assert_eq!(sub.rel, Path::new("inside/x"));
    // An allowed prefix that is a file is pinned from its folder.
    std::fs::write(volume.join("socket"), "").unwrap();
    let file = HostVolume {
        path: volume.join("socket"),
        read_only: false,
        host_root: Some(volume.join("socket")),
    };
    let pinned = file.source(None).unwrap().unwrap();
    assert_eq!((pinned.root, pinned.rel), (volume.clone(), "socket".into()));
    let allowed = root.path().join("allowed");
    std::fs::create_dir_all(&allowed).unwrap();
    std::os::unix::fs::symlink("/etc", allowed.join("etc")).unwrap();
    assert!(!resolved_under_allowed(
        &allowed.join("etc"),
        std::slice::from_ref(&allowed)
    ));
    assert!(resolved_under_allowed(
        &allowed,
        std::slice::from_ref(&allowed)
    ));
}

#[test]
fn pod_dirs_cannot_escape() {
    let d = pod_dir(Path::new("/var/lib/k"), "../../etc");
    assert_eq!(d, Path::new("/var/lib/k/pods/______etc"));
}
