//! Invalid object metadata (names, labels) and ConfigMap/Secret data.

use super::Case;

pub(super) const CASES: &[Case] = &[
    Case {
        name: "generateName without a name",
        yaml: r#"
apiVersion: v1
kind: ConfigMap
metadata: {generateName: settings-}
data: {a: b}
"#,
        errors: &[(3, "metadata.name", "GitOps needs a fixed name")],
    },
    Case {
        name: "uppercase object name",
        yaml: r#"
apiVersion: v1
kind: ConfigMap
metadata:
  name: Web_Config
data: {a: b}
"#,
        errors: &[(4, "metadata.name", "RFC 1123 subdomain")],
    },
    Case {
        name: "missing name",
        yaml: r#"
apiVersion: v1
kind: ConfigMap
metadata:
  labels: {app: web}
data: {a: b}
"#,
        errors: &[(3, "metadata.name", "Required value")],
    },
    Case {
        name: "label value with a space",
        yaml: r#"
apiVersion: v1
kind: ConfigMap
metadata:
  name: cfg
  labels:
    team: web team
"#,
        errors: &[(
            6,
            "metadata.labels[team]",
            "a valid label must be an empty string",
        )],
    },
    Case {
        name: "label key with bad prefix",
        yaml: r#"
apiVersion: v1
kind: ConfigMap
metadata:
  name: cfg
  labels:
    Example.COM/team: web
"#,
        errors: &[(
            6,
            "metadata.labels[Example.COM/team]",
            "label key: prefix part",
        )],
    },
    Case {
        name: "secret data not base64, value never shown",
        yaml: r#"
apiVersion: v1
kind: Secret
metadata: {name: api}
data:
  token: hunter2!
"#,
        errors: &[(
            5,
            "data[token]",
            "Invalid value: <hidden>: illegal base64 data at input byte",
        )],
    },
    Case {
        name: "a Secret of keel's own type (a forged join token)",
        yaml: r#"
apiVersion: v1
kind: Secret
metadata: {name: join-token-abcdef, namespace: keel-system}
type: keel.dev/join-token
data: {token-id: YWJjZGVm}
"#,
        errors: &[(
            4,
            "type",
            "Forbidden: Secret type \"keel.dev/join-token\" is keel's own",
        )],
    },
    Case {
        name: "configmap key with a slash",
        yaml: r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg}
data:
  conf/app.ini: x
"#,
        errors: &[(
            5,
            "data[conf/app.ini]",
            "a valid config key must consist of",
        )],
    },
    Case {
        name: "an invalid label key is located at the key, its value at the value",
        yaml: r#"
apiVersion: v1
kind: ConfigMap
metadata:
  name: cfg
  labels:
    app: web
    bad key: "also bad!"
"#,
        errors: &[
            (
                7,
                "metadata.labels[bad key]",
                "label key: name part must consist of",
            ),
            (7, "metadata.labels[bad key]", "a valid label must be"),
        ],
    },
    Case {
        name: "config keys may not start with ..",
        yaml: r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg}
data:
  ..data: x
"#,
        errors: &[(5, "data[..data]", "must not start with '..'")],
    },
];
