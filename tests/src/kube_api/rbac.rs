//! A small RBAC evaluator, to prove a ClusterRole grants what a client asks the stand-in for and
//! nothing more: each [`RecordedRequest`] becomes the [`Access`] the API server's authorizer sees
//! (its request-info: verb, API group, resource, subresource, namespace, name, as
//! `k8s.io/apiserver`'s `RequestInfoFactory` derives them from the HTTP request), and
//! [`Rule::allows`] decides as the RBAC authorizer's rule matching does (`*` wildcards,
//! `resource/subresource`, `resourceNames`). Pure functions; no stand-in state.

use super::RecordedRequest;

/// What one API request asks to do, in RBAC's terms.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Access {
    /// get, list, watch, create, update, patch, delete, deletecollection.
    pub verb: String,
    /// API group; `""` for the core group.
    pub api_group: String,
    /// Plural resource name.
    pub resource: String,
    /// Subresource (`status`), if any.
    pub subresource: Option<String>,
    /// Namespace, if namespaced.
    pub namespace: Option<String>,
    /// Object name, if one object is addressed.
    pub name: Option<String>,
}

impl Access {
    /// `resource` or `resource/subresource`, as RBAC rules spell it.
    pub fn rbac_resource(&self) -> String {
        match &self.subresource {
            Some(s) => format!("{}/{s}", self.resource),
            None => self.resource.clone(),
        }
    }
}

impl std::fmt::Display for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let group = if self.api_group.is_empty() {
            "core"
        } else {
            &self.api_group
        };
        write!(f, "{} {group}/{}", self.verb, self.rbac_resource())?;
        if let Some(ns) = &self.namespace {
            write!(f, " in {ns}")?;
        }
        if let Some(n) = &self.name {
            write!(f, " named {n}")?;
        }
        Ok(())
    }
}

/// Whether a query string sets `watch` to a true value (Go's `strconv.ParseBool`).
fn is_watch(query: &str) -> bool {
    query.split('&').any(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        k == "watch" && matches!(v, "1" | "t" | "T" | "true" | "TRUE" | "True")
    })
}

/// The resource request an HTTP request makes; `None` for non-resource URLs (discovery:
/// `/api`, `/apis/<group>/<version>` without a resource, `/version`, `/openapi/...`), which the
/// default `system:discovery` role grants every authenticated client.
pub fn access(method: &str, path: &str, query: &str) -> Option<Access> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (api_group, rest) = match parts.as_slice() {
        ["api", _version, rest @ ..] => (String::new(), rest),
        ["apis", group, _version, rest @ ..] => ((*group).to_string(), rest),
        _ => return None,
    };
    // namespaces/<ns>/<resource>... is namespaced; namespaces and namespaces/<name>[/<sub>] are
    // the namespace objects themselves (group core only).
    let (namespace, rest) = match rest {
        ["namespaces", ns, resource, tail @ ..] => (Some((*ns).to_string()), {
            let mut v = vec![*resource];
            v.extend_from_slice(tail);
            v
        }),
        other => (None, other.to_vec()),
    };
    let (resource, name, subresource) = match rest.as_slice() {
        [] => return None,
        [resource] => (*resource, None, None),
        [resource, name] => (*resource, Some((*name).to_string()), None),
        [resource, name, sub, ..] => (
            *resource,
            Some((*name).to_string()),
            Some((*sub).to_string()),
        ),
    };
    let verb = match (method.to_ascii_uppercase().as_str(), name.is_some()) {
        ("GET" | "HEAD", _) if is_watch(query) => "watch",
        ("GET" | "HEAD", true) => "get",
        ("GET" | "HEAD", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        (other, _) => return Some(unknown_verb(other, api_group, resource, namespace, name)),
    };
    Some(Access {
        verb: verb.to_string(),
        api_group,
        resource: resource.to_string(),
        subresource,
        namespace,
        name,
    })
}

fn unknown_verb(
    method: &str,
    api_group: String,
    resource: &str,
    namespace: Option<String>,
    name: Option<String>,
) -> Access {
    Access {
        verb: method.to_ascii_lowercase(),
        api_group,
        resource: resource.to_string(),
        subresource: None,
        namespace,
        name,
    }
}

/// The access a recorded request made (see [`access`]).
pub fn access_of(request: &RecordedRequest) -> Option<Access> {
    access(&request.method, &request.path, &request.query)
}

/// One rule of a (Cluster)Role, as RBAC reads it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rule {
    /// `apiGroups` (`""` is core, `*` any).
    pub api_groups: Vec<String>,
    /// `resources` (`*`, `pods`, `pods/status`, `*/status`, `pods/*`).
    pub resources: Vec<String>,
    /// `verbs` (`*` any).
    pub verbs: Vec<String>,
    /// `resourceNames` (empty: any).
    pub resource_names: Vec<String>,
}

impl Rule {
    /// Whether this rule allows `access` (the RBAC authorizer's `RuleAllows`).
    pub fn allows(&self, access: &Access) -> bool {
        let verb = self.verbs.iter().any(|v| v == "*" || *v == access.verb);
        let group = self
            .api_groups
            .iter()
            .any(|g| g == "*" || *g == access.api_group);
        let resource = self.resources.iter().any(|r| resource_matches(r, access));
        let name = self.resource_names.is_empty()
            || access
                .name
                .as_ref()
                .is_some_and(|n| self.resource_names.contains(n));
        verb && group && resource && name
    }

    /// Every (group, resource, verb) the rule names, wildcards kept as written.
    pub fn grants(&self) -> Vec<(String, String, String)> {
        let mut out = Vec::new();
        for g in &self.api_groups {
            for r in &self.resources {
                for v in &self.verbs {
                    out.push((g.clone(), r.clone(), v.clone()));
                }
            }
        }
        out
    }
}

/// RBAC's `ResourceMatches`: exact, `*`, `*/sub` for any resource's subresource, `res/*` for any
/// subresource of one resource.
fn resource_matches(rule: &str, access: &Access) -> bool {
    if rule == "*" {
        return true;
    }
    let combined = access.rbac_resource();
    if rule == combined {
        return true;
    }
    match &access.subresource {
        Some(sub) => rule == format!("*/{sub}") || rule == format!("{}/*", access.resource),
        None => false,
    }
}

/// Whether any of `rules` allows `access`.
pub fn allowed(rules: &[Rule], access: &Access) -> bool {
    rules.iter().any(|r| r.allows(access))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> Rule {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect();
        Rule {
            api_groups: v(groups),
            resources: v(resources),
            verbs: v(verbs),
            resource_names: Vec::new(),
        }
    }

    #[test]
    fn http_requests_map_to_the_verbs_the_api_server_authorizes() {
        let a = |m, p, q| access(m, p, q).unwrap();
        let get = a("GET", "/api/v1/namespaces/ns1/pods/web", "");
        assert_eq!(
            (
                get.verb.as_str(),
                get.api_group.as_str(),
                get.resource.as_str()
            ),
            ("get", "", "pods")
        );
        assert_eq!(get.namespace.as_deref(), Some("ns1"));
        assert_eq!(get.name.as_deref(), Some("web"));
        assert_eq!(
            a("GET", "/api/v1/pods", "fieldSelector=spec.nodeName%3Dn1").verb,
            "list"
        );
        let watch = a(
            "GET",
            "/api/v1/pods",
            "fieldSelector=x&watch=true&resourceVersion=5",
        );
        assert_eq!((watch.verb.as_str(), watch.namespace), ("watch", None));
        assert_eq!(a("GET", "/api/v1/pods", "watch=false").verb, "list");
        let nad = a(
            "GET",
            "/apis/k8s.cni.cncf.io/v1/namespaces/d/network-attachment-definitions/blue",
            "",
        );
        assert_eq!(nad.api_group, "k8s.cni.cncf.io");
        assert_eq!(nad.resource, "network-attachment-definitions");
        assert_eq!(a("POST", "/api/v1/namespaces/d/events", "").verb, "create");
        assert_eq!(a("PATCH", "/api/v1/namespaces/d/pods/p", "").verb, "patch");
        assert_eq!(a("PUT", "/api/v1/namespaces/d/pods/p", "").verb, "update");
        let status = a("PUT", "/api/v1/namespaces/d/pods/p/status", "");
        assert_eq!(status.rbac_resource(), "pods/status");
        assert_eq!(
            a("DELETE", "/api/v1/namespaces/d/pods/p", "").verb,
            "delete"
        );
        assert_eq!(
            a("DELETE", "/api/v1/namespaces/d/pods", "").verb,
            "deletecollection"
        );
        let ns = a("GET", "/api/v1/namespaces/d", "");
        assert_eq!(
            (ns.resource.as_str(), ns.name.as_deref()),
            ("namespaces", Some("d"))
        );
        for discovery in [
            "/api",
            "/apis",
            "/api/v1",
            "/apis/k8s.cni.cncf.io/v1",
            "/version",
        ] {
            assert_eq!(access("GET", discovery, ""), None, "{discovery}");
        }
    }

    #[test]
    fn rules_match_verbs_groups_resources_subresources_and_wildcards() {
        let get_pod = access("GET", "/api/v1/namespaces/d/pods/p", "").unwrap();
        let put_status = access("PUT", "/api/v1/namespaces/d/pods/p/status", "").unwrap();
        assert!(rule(&[""], &["pods"], &["get"]).allows(&get_pod));
        assert!(!rule(&[""], &["pods"], &["list"]).allows(&get_pod));
        assert!(!rule(&["apps"], &["pods"], &["get"]).allows(&get_pod));
        assert!(rule(&["*"], &["*"], &["*"]).allows(&get_pod));
        assert!(!rule(&[""], &["pods"], &["update"]).allows(&put_status));
        assert!(rule(&[""], &["pods/status"], &["update"]).allows(&put_status));
        assert!(rule(&[""], &["*/status"], &["update"]).allows(&put_status));
        assert!(rule(&[""], &["pods/*"], &["update"]).allows(&put_status));
        assert!(!rule(&[""], &["pods/status"], &["get"]).allows(&get_pod));
        let mut named = rule(&[""], &["pods"], &["get", "list"]);
        named.resource_names = vec!["p".into()];
        assert!(named.allows(&get_pod));
        assert!(!named.allows(&access("GET", "/api/v1/pods", "").unwrap()));
        assert_eq!(rule(&[""], &["pods", "events"], &["get"]).grants().len(), 2);
    }
}
