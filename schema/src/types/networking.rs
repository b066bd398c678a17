//! `networking.k8s.io/v1`: Ingress and IngressClass.

use super::meta::ObjectMeta;

model! {
    pub struct Ingress {
        #[serde(default)]
        pub api_version: String,
        #[serde(default)]
        pub kind: String,
        #[serde(default)]
        pub metadata: ObjectMeta,
        #[serde(default)]
        pub spec: IngressSpec,
        pub status: Option<IngressStatus>,
    }
}

model! {
    pub struct IngressSpec {
        /// The IngressClass that serves it; without one, the default class (or keel, when
        /// no class is marked default).
        pub ingress_class_name: Option<String>,
        /// Where requests no rule matches go (404 without one).
        pub default_backend: Option<IngressBackend>,
        pub tls: Option<Vec<IngressTls>>,
        pub rules: Option<Vec<IngressRule>>,
    }
}

model! {
    pub struct IngressBackend {
        pub service: Option<IngressServiceBackend>,
    }
}

model! {
    pub struct IngressServiceBackend {
        #[serde(default)]
        pub name: String,
        pub port: Option<ServiceBackendPort>,
    }
}

model! {
    pub struct ServiceBackendPort {
        pub name: Option<String>,
        pub number: Option<i64>,
    }
}

model! {
    pub struct IngressTls {
        pub hosts: Option<Vec<String>>,
        /// A Secret of type kubernetes.io/tls in the Ingress's namespace.
        pub secret_name: Option<String>,
    }
}

model! {
    pub struct IngressRule {
        /// Exact (`shop.example.com`) or one-label wildcard (`*.example.com`); any host when
        /// absent.
        pub host: Option<String>,
        pub http: Option<HttpIngressRuleValue>,
    }
}

model! {
    pub struct HttpIngressRuleValue {
        #[serde(default)]
        pub paths: Vec<HttpIngressPath>,
    }
}

model! {
    pub struct HttpIngressPath {
        pub path: Option<String>,
        /// `Exact`, `Prefix` (by path element), or `ImplementationSpecific` (as Prefix).
        #[schemars(extend("enum" = ["Exact", "Prefix", "ImplementationSpecific", null]))]
        pub path_type: Option<String>,
        #[serde(default)]
        pub backend: IngressBackend,
    }
}

model! {
    pub struct IngressStatus {
        pub load_balancer: Option<IngressLoadBalancerStatus>,
    }
}

model! {
    pub struct IngressLoadBalancerStatus {
        pub ingress: Option<Vec<IngressLoadBalancerIngress>>,
    }
}

model! {
    pub struct IngressLoadBalancerIngress {
        pub ip: Option<String>,
        pub hostname: Option<String>,
    }
}

model! {
    pub struct IngressClass {
        #[serde(default)]
        pub api_version: String,
        #[serde(default)]
        pub kind: String,
        #[serde(default)]
        pub metadata: ObjectMeta,
        #[serde(default)]
        pub spec: IngressClassSpec,
    }
}

model! {
    pub struct IngressClassSpec {
        /// `keel.dev/ingress` for classes keel's agents serve.
        pub controller: Option<String>,
    }
}

impl Ingress {
    /// The addresses in `status.loadBalancer.ingress`, as written.
    pub fn load_balancer_ips(&self) -> Vec<&str> {
        self.status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref())
            .into_iter()
            .flatten()
            .filter_map(|i| i.ip.as_deref())
            .collect()
    }
}
