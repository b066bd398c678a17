//! Invalid Services: types, ports, node ports, cluster IPs, session affinity.

use super::Case;

pub(super) const CASES: &[Case] = &[
    Case {
        name: "service name must be a DNS-1035 label",
        yaml: r#"
apiVersion: v1
kind: Service
metadata:
  name: 1web
spec:
  ports: [{port: 80}]
"#,
        errors: &[(4, "metadata.name", "DNS-1035 label")],
    },
    Case {
        name: "service type ExternalName unsupported",
        yaml: r#"
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: ExternalName
  ports: [{port: 80}]
"#,
        errors: &[(
            5,
            "spec.type",
            "Unsupported value: \"ExternalName\": supported values: \"ClusterIP\", \"NodePort\", \"LoadBalancer\"",
        )],
    },
    Case {
        name: "nodePort outside range",
        yaml: r#"
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: NodePort
  ports:
  - port: 80
    nodePort: 80
"#,
        errors: &[(
            8,
            "spec.ports[0].nodePort",
            "The range of valid ports is 30000-32767",
        )],
    },
    Case {
        name: "nodePort on a ClusterIP service",
        yaml: r#"
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  ports:
  - port: 80
    nodePort: 30080
"#,
        errors: &[(
            7,
            "spec.ports[0].nodePort",
            "may not be used when `type` is 'ClusterIP'",
        )],
    },
    Case {
        name: "service port names required with several ports",
        yaml: r#"
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  ports:
  - name: http
    port: 80
  - port: 443
"#,
        errors: &[(
            8,
            "spec.ports[1].name",
            "must be specified when there is more than one port",
        )],
    },
    Case {
        name: "service target port name format",
        yaml: r#"
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  ports:
  - port: 80
    targetPort: "http_port"
"#,
        errors: &[(
            7,
            "spec.ports[0].targetPort",
            "must contain only alpha-numeric characters",
        )],
    },
    Case {
        name: "named targetPort no selected template defines",
        yaml: r#"
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports:
  - port: 80
    targetPort: http
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: web:1
        ports: [{name: web, containerPort: 80}]
"#,
        errors: &[(
            8,
            "spec.ports[0].targetPort",
            "no container port has this name in the pods this Service selects (Deployment default/web)",
        )],
    },
    Case {
        name: "invalid clusterIP",
        yaml: r#"
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  clusterIP: 10.96.0.300
  ports: [{port: 80}]
"#,
        errors: &[(
            5,
            "spec.clusterIP",
            "must be empty, 'None', or a valid IPv4 address",
        )],
    },
    Case {
        name: "session affinity timeout out of range",
        yaml: r#"
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  sessionAffinity: ClientIP
  sessionAffinityConfig:
    clientIP:
      timeoutSeconds: 0
  ports: [{port: 80}]
"#,
        errors: &[(
            8,
            "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
            "must be between 1 and 86400",
        )],
    },
    Case {
        name: "external traffic policy on a ClusterIP service, and a misspelt one",
        yaml: r#"
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  externalTrafficPolicy: Local
  ports: [{port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: public}
spec:
  type: NodePort
  externalTrafficPolicy: local
  ports: [{port: 80}]
"#,
        errors: &[
            (
                5,
                "spec.externalTrafficPolicy",
                "may only be set when `type` is one of",
            ),
            (
                13,
                "spec.externalTrafficPolicy",
                "Unsupported value: \"local\"",
            ),
        ],
    },
    Case {
        name: "loadBalancerIP only on LoadBalancer Services, and an address",
        yaml: r#"
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: NodePort
  loadBalancerIP: 10.0.0.240
  ports: [{port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: public}
spec:
  type: LoadBalancer
  clusterIP: None
  loadBalancerIP: ten
  ports: [{port: 80}]
"#,
        errors: &[
            (
                6,
                "spec.loadBalancerIP",
                "may only be set when `type` is 'LoadBalancer'",
            ),
            (
                14,
                "spec.clusterIP",
                "may not be set to 'None' for LoadBalancer services",
            ),
            (15, "spec.loadBalancerIP", "must be a valid IPv4 address"),
        ],
    },
    Case {
        name: "an Ingress with a bad host, path, path type and backend",
        yaml: r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web}
spec:
  rules:
  - host: 10.0.0.1
    http:
      paths:
      - path: shop
        pathType: Prefix
        backend: {service: {name: shop, port: {number: 80}}}
      - path: /api
        pathType: Regex
        backend: {service: {name: api}}
  tls:
  - hosts: ["*.example.com"]
    secretName: Bad_Name
"#,
        errors: &[
            (
                6,
                "spec.rules[0].host",
                "must be a DNS name, not an IP address",
            ),
            (
                9,
                "spec.rules[0].http.paths[0].path",
                "must be an absolute path",
            ),
            (
                13,
                "spec.rules[0].http.paths[1].pathType",
                "Unsupported value: \"Regex\"",
            ),
            (
                14,
                "spec.rules[0].http.paths[1].backend.service.port",
                "Required value",
            ),
            (17, "spec.tls[0].secretName", "Invalid value"),
        ],
    },
];
