//! Name formats, with Kubernetes' own wording so messages read as users know them.

fn is_alnum(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// RFC 1123 label: pod container names, namespaces, volume names.
pub fn dns1123_label(v: &str) -> Option<String> {
    if v.len() > 63 {
        return Some("must be no more than 63 characters".into());
    }
    let ok = !v.is_empty()
        && v.chars().all(|c| is_alnum(c) || c == '-')
        && v.starts_with(is_alnum)
        && v.ends_with(is_alnum);
    (!ok).then(|| {
        "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc')".into()
    })
}

/// RFC 1123 subdomain: most object names.
pub fn dns1123_subdomain(v: &str) -> Option<String> {
    if v.len() > 253 {
        return Some("must be no more than 253 characters".into());
    }
    let ok = !v.is_empty()
        && v.split('.').all(|part| {
            !part.is_empty()
                && part.chars().all(|c| is_alnum(c) || c == '-')
                && part.starts_with(is_alnum)
                && part.ends_with(is_alnum)
        });
    (!ok).then(|| {
        "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com')".into()
    })
}

/// A path segment: the names of RBAC roles and bindings (`system:aggregate-to-view` is
/// one), which Kubernetes only keeps from breaking a URL. Control characters are refused
/// too, so a name always prints as it is.
pub fn path_segment_name(v: &str) -> Option<String> {
    if v.len() > 253 {
        return Some("must be no more than 253 characters".into());
    }
    if v == "." || v == ".." {
        return Some(format!("may not be '{v}'"));
    }
    if let Some(c) = v.chars().find(|c| *c == '/' || *c == '%' || c.is_control()) {
        return Some(format!("may not contain {c:?}"));
    }
    None
}

/// RFC 1035 label: Service names (they become DNS names and environment variable prefixes).
pub fn dns1035_label(v: &str) -> Option<String> {
    if v.len() > 63 {
        return Some("must be no more than 63 characters".into());
    }
    let ok = !v.is_empty()
        && v.chars().all(|c| is_alnum(c) || c == '-')
        && v.starts_with(|c: char| c.is_ascii_lowercase())
        && v.ends_with(is_alnum);
    (!ok).then(|| {
        "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123')".into()
    })
}

fn qualified_name_part(v: &str) -> bool {
    let alnum = |c: char| c.is_ascii_alphanumeric();
    !v.is_empty()
        && v.len() <= 63
        && v.chars().all(|c| alnum(c) || matches!(c, '-' | '_' | '.'))
        && v.starts_with(alnum)
        && v.ends_with(alnum)
}

/// Label and annotation keys: `[prefix/]name`.
pub fn qualified_name(v: &str) -> Option<String> {
    let (prefix, name) = match v.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, v),
    };
    if let Some(p) = prefix {
        if p.is_empty() {
            return Some("prefix part must be non-empty".into());
        }
        if let Some(e) = dns1123_subdomain(p) {
            return Some(format!("prefix part {e}"));
        }
    }
    if name.len() > 63 {
        return Some("name part must be no more than 63 characters".into());
    }
    (!qualified_name_part(name)).then(|| {
        "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc')".into()
    })
}

/// Label values: empty, or like a qualified name part.
pub fn label_value(v: &str) -> Option<String> {
    if v.len() > 63 {
        return Some("must be no more than 63 characters".into());
    }
    (!v.is_empty() && !qualified_name_part(v)).then(|| {
        "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345')".into()
    })
}

/// IANA service names: named ports.
pub fn port_name(v: &str) -> Option<String> {
    if v.len() > 15 {
        return Some("must be no more than 15 characters".into());
    }
    if !v
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Some(
            "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".into(),
        );
    }
    if v.contains("--") {
        return Some("must not contain consecutive hyphens".into());
    }
    if !v.chars().any(|c| c.is_ascii_lowercase()) {
        return Some("must contain at least one letter (a-z)".into());
    }
    if v.starts_with('-') || v.ends_with('-') {
        return Some("must not begin or end with a hyphen".into());
    }
    None
}

/// Environment variable names (and `envFrom` prefixes).
pub fn env_var_name(v: &str) -> Option<String> {
    let ok = !v.is_empty()
        && !v.starts_with(|c: char| c.is_ascii_digit())
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    (!ok).then(|| {
        "a valid environment variable name must consist of alphabetic characters, digits, '_', '-', or '.', and must not start with a digit (e.g. 'my.env-name',  or 'MY_ENV.NAME',  or 'MyEnvName1')".into()
    })
}

/// Keys of ConfigMap and Secret data.
pub fn config_key(v: &str) -> Option<String> {
    if v.len() > 253 {
        return Some("must be no more than 253 characters".into());
    }
    if v == "." || v == ".." {
        return Some(format!("must not be '{v}'"));
    }
    if v.starts_with("..") {
        return Some("must not start with '..'".into());
    }
    let ok = !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    (!ok).then(|| {
        "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name')".into()
    })
}

/// Labels a node may not give itself, as Kubernetes' NodeRestriction: keel's own prefix,
/// `node-restriction.kubernetes.io/` (for labels only an admin sets, which pods select to
/// land on trusted nodes), and Kubernetes' prefixes beyond the few a kubelet may set.
/// `kubernetes.io/hostname` is keel's to set, from the node's name.
pub fn reserved_node_label(key: &str) -> Option<&'static str> {
    const KUBELET_MAY_SET: &[&str] = &[
        "kubernetes.io/arch",
        "kubernetes.io/os",
        "beta.kubernetes.io/arch",
        "beta.kubernetes.io/os",
        "beta.kubernetes.io/instance-type",
        "node.kubernetes.io/instance-type",
        "topology.kubernetes.io/region",
        "topology.kubernetes.io/zone",
        "failure-domain.beta.kubernetes.io/region",
        "failure-domain.beta.kubernetes.io/zone",
    ];
    let prefix = key.split_once('/').map(|(p, _)| p)?;
    let under = |domain: &str| prefix == domain || prefix.ends_with(&format!(".{domain}"));
    if under("keel.dev") {
        return Some("keel.dev labels are keel's own; a node cannot set them");
    }
    if under("node-restriction.kubernetes.io") {
        return Some(
            "node-restriction.kubernetes.io labels are set by an admin, never by the node",
        );
    }
    let kubelet_prefix = matches!(prefix, "kubelet.kubernetes.io" | "node.kubernetes.io");
    if (under("kubernetes.io") || under("k8s.io"))
        && !kubelet_prefix
        && !KUBELET_MAY_SET.contains(&key)
    {
        return Some(
            "a node may set only the kubernetes.io labels a kubelet may (arch, os, instance \
             type, region, zone, kubelet.kubernetes.io/ and node.kubernetes.io/)",
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_rules_table() {
        type Check = fn(&str) -> Option<String>;
        let table: &[(Check, &str, bool)] = &[
            (dns1123_label, "web-1", true),
            (dns1123_label, "Web", false),
            (dns1123_label, "-web", false),
            (dns1123_label, "a.b", false),
            (dns1123_subdomain, "web.example.com", true),
            (dns1123_subdomain, "web..x", false),
            (dns1123_subdomain, "web_1", false),
            (dns1035_label, "web", true),
            (dns1035_label, "1web", false),
            (qualified_name, "app.kubernetes.io/name", true),
            (qualified_name, "App_Name", true),
            (qualified_name, "/name", false),
            (qualified_name, "bad prefix/name", false),
            (qualified_name, "name-", false),
            (label_value, "", true),
            (label_value, "v1.2_3", true),
            (label_value, "has space", false),
            (port_name, "http", true),
            (port_name, "http-alt", true),
            (port_name, "8080", false),
            (port_name, "my--port", false),
            (port_name, "a-very-long-port-name", false),
            (env_var_name, "MY_VAR", true),
            (env_var_name, "1VAR", false),
            (env_var_name, "MY VAR", false),
            (config_key, "index.html", true),
            (config_key, "..", false),
            (config_key, "..data", false),
            (config_key, "a/b", false),
        ];
        for (check, input, ok) in table {
            assert_eq!(check(input).is_none(), *ok, "{input:?}: {:?}", check(input));
        }
        assert!(dns1123_label(&"a".repeat(64)).is_some());
        assert!(label_value(&"a".repeat(64)).is_some());
    }
}
