//! Invalid CustomResourceDefinitions, and objects of the kinds they declare: refused where
//! written, in Kubernetes' words.

use super::Case;

pub(super) const CASES: &[Case] = &[
    Case {
        name: "a definition wrong in every part",
        yaml: r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example
  names: {kind: Widget, plural: Widgets, listKind: Widget, shortNames: [w_]}
  scope: Global
  preserveUnknownFields: true
  conversion: {strategy: Webhook}
  versions:
  - name: v1
    served: false
    storage: false
  - name: v1
    served: false
    storage: false
    schema:
      openAPIV3Schema:
        type: array
        properties:
          metadata:
            type: object
            properties: {labels: {type: object}}
          spec:
            type: object
            properties:
              size: {type: int}
              tags: {type: array}
              mode: {pattern: "([a-z"}
              count: {type: integer, minimum: 1, maxLength: -1}
              extra: {type: object, properties: {a: {type: string}}, additionalProperties: {type: string}}
              labels: {type: object, additionalProperties: {type: string, maxLenght: 3}}
              choice: {type: string, x-kubernetes-int-or-string: true}
              list: {type: array, items: {type: string}, x-kubernetes-list-type: map}
    additionalPrinterColumns:
    - {name: Size, type: size, jsonPath: .spec.size}
"#,
        errors: &[
            (
                3,
                "metadata.name",
                "must be spec.names.plural+\".\"+spec.group: \"Widgets.example\"",
            ),
            (5, "spec.group", "should be a domain with at least one dot"),
            (6, "spec.names.plural", "a DNS-1035 label"),
            (
                6,
                "spec.names.listKind",
                "kind and listKind may not be the same",
            ),
            (6, "spec.names.shortNames[0]", "a DNS-1035 label"),
            (7, "spec.scope", "Unsupported value: \"Global\""),
            (8, "spec.preserveUnknownFields", "must be false"),
            (
                9,
                "spec.conversion.strategy",
                "keel runs no conversion webhooks",
            ),
            (
                10,
                "spec.versions",
                "must have exactly one version marked as storage version",
            ),
            (
                10,
                "spec.versions",
                "must have at least one version marked as served",
            ),
            (
                11,
                "spec.versions[0].schema.openAPIV3Schema",
                "schemas are required",
            ),
            (14, "spec.versions[1].name", "Duplicate value: \"v1\""),
            (
                19,
                "spec.versions[1].schema.openAPIV3Schema.type",
                "Unsupported value: \"array\"",
            ),
            (
                21,
                "spec.versions[1].schema.openAPIV3Schema.properties[metadata]",
                "must not specify anything other than name and generateName",
            ),
            (
                27,
                "spec.versions[1].schema.openAPIV3Schema.properties[spec].properties[size].type",
                "Unsupported value: \"int\"",
            ),
            (
                28,
                "spec.versions[1].schema.openAPIV3Schema.properties[spec].properties[tags].items",
                "must be specified for arrays",
            ),
            (
                29,
                "spec.versions[1].schema.openAPIV3Schema.properties[spec].properties[mode].type",
                "must not be empty for specified object fields",
            ),
            (
                29,
                "spec.versions[1].schema.openAPIV3Schema.properties[spec].properties[mode].pattern",
                "unclosed character class",
            ),
            (
                30,
                "spec.versions[1].schema.openAPIV3Schema.properties[spec].properties[count].maxLength",
                "must be greater than or equal to 0",
            ),
            (
                31,
                "spec.versions[1].schema.openAPIV3Schema.properties[spec].properties[extra].additionalProperties",
                "mutually exclusive",
            ),
            (
                32,
                "spec.versions[1].schema.openAPIV3Schema.properties[spec].properties[labels].additionalProperties.maxLenght",
                "unknown field",
            ),
            (
                33,
                "spec.versions[1].schema.openAPIV3Schema.properties[spec].properties[choice].type",
                "must be empty if x-kubernetes-int-or-string is true",
            ),
            (
                34,
                "spec.versions[1].schema.openAPIV3Schema.properties[spec].properties[list].x-kubernetes-list-map-keys",
                "must be specified when x-kubernetes-list-type is map",
            ),
            (
                36,
                "spec.versions[1].additionalPrinterColumns[0].type",
                "Unsupported value: \"size\"",
            ),
        ],
    },
    Case {
        name: "objects of a kind a definition declares, before it, checked against its schema",
        yaml: r#"
apiVersion: stable.example.com/v1
kind: CronTab
metadata: {name: nightly, labels: {bad label: x}}
spec:
  cronSpec: 5
  replicas: 0
  mode: Sometimes
  imagePullPolicy: Always
  ports: [80, "http", 1.5]
  tags: {a: 1}
  backoff: 1.5
  extra: {anything: [goes]}
  template: {apiVersion: v1, kind: Pod, metadata: {name: p}, spec: {}}
---
apiVersion: stable.example.com/v2
kind: CronTab
metadata: {name: newer}
---
apiVersion: other.example.com/v1
kind: CronTab
metadata: {name: elsewhere}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: crontabs.stable.example.com}
spec:
  group: stable.example.com
  names: {kind: CronTab, plural: crontabs, singular: crontab, shortNames: [ct]}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [cronSpec, image]
            properties:
              cronSpec: {type: string}
              image: {type: string}
              replicas: {type: integer, minimum: 1}
              mode: {type: string, enum: [Always, Never]}
              ports: {type: array, items: {x-kubernetes-int-or-string: true}}
              tags: {type: object, additionalProperties: {type: string}}
              backoff: {type: number}
              extra: {type: object, x-kubernetes-preserve-unknown-fields: true}
              template:
                type: object
                x-kubernetes-embedded-resource: true
                properties: {spec: {type: object, x-kubernetes-preserve-unknown-fields: true}}
"#,
        errors: &[
            (3, "metadata.labels[bad label]", "name part must consist of"),
            (4, "spec.image", "Required value"),
            (
                5,
                "spec.cronSpec",
                "Invalid value: 5: must be of type string",
            ),
            (
                6,
                "spec.replicas",
                "Invalid value: 0: should be greater than or equal to 1",
            ),
            (
                7,
                "spec.mode",
                "Unsupported value: \"Sometimes\": supported values: \"Always\", \"Never\"",
            ),
            (
                8,
                "spec.imagePullPolicy",
                "unknown field \"imagePullPolicy\"",
            ),
            (9, "spec.ports[2]", "must be of type integer or string"),
            (
                10,
                "spec.tags.a",
                "Invalid value: 1: must be of type string",
            ),
            (
                15,
                "apiVersion",
                "Unsupported value: \"stable.example.com/v2\": crontabs.stable.example.com serves \"stable.example.com/v1\"",
            ),
            (
                20,
                "kind",
                "or those a CustomResourceDefinition in the revision declares",
            ),
        ],
    },
];
