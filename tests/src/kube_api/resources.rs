//! The resource types the stand-in serves, and the discovery documents that describe them.

use serde_json::{json, Value};

/// A resource type the stand-in serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Resource {
    /// core/v1 `pods` (with the `status` subresource).
    Pods,
    /// k8s.cni.cncf.io/v1 `network-attachment-definitions` (a CRD in a real cluster).
    NetworkAttachmentDefinitions,
    /// core/v1 `events` (the reference multus records `AddedInterface` events).
    Events,
}

/// Static description of a resource type.
#[derive(Debug)]
pub(crate) struct ResourceType {
    pub(crate) resource: Resource,
    /// API group, empty for the core group.
    pub(crate) group: &'static str,
    pub(crate) version: &'static str,
    pub(crate) plural: &'static str,
    pub(crate) singular: &'static str,
    pub(crate) kind: &'static str,
    pub(crate) list_kind: &'static str,
    pub(crate) short_names: &'static [&'static str],
    /// Built into kube-apiserver (typed list items carry no kind/apiVersion; strategic merge
    /// patch is accepted). Custom resources are not.
    pub(crate) builtin: bool,
    /// Whether PUT without metadata.resourceVersion is accepted.
    pub(crate) allow_unconditional_update: bool,
    /// Whether a `status` subresource exists.
    pub(crate) status_subresource: bool,
    /// Field selectors supported beyond metadata.name and metadata.namespace.
    pub(crate) field_labels: &'static [&'static str],
}

pub(crate) static PODS: ResourceType = ResourceType {
    resource: Resource::Pods,
    group: "",
    version: "v1",
    plural: "pods",
    singular: "pod",
    kind: "Pod",
    list_kind: "PodList",
    short_names: &["po"],
    builtin: true,
    allow_unconditional_update: false,
    status_subresource: true,
    field_labels: &[
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    ],
};

pub(crate) static NADS: ResourceType = ResourceType {
    resource: Resource::NetworkAttachmentDefinitions,
    group: "k8s.cni.cncf.io",
    version: "v1",
    plural: "network-attachment-definitions",
    singular: "network-attachment-definition",
    kind: "NetworkAttachmentDefinition",
    list_kind: "NetworkAttachmentDefinitionList",
    short_names: &["net-attach-def"],
    builtin: false,
    allow_unconditional_update: false,
    status_subresource: false,
    field_labels: &[],
};

pub(crate) static EVENTS: ResourceType = ResourceType {
    resource: Resource::Events,
    group: "",
    version: "v1",
    plural: "events",
    singular: "event",
    kind: "Event",
    list_kind: "EventList",
    short_names: &["ev"],
    builtin: true,
    allow_unconditional_update: true,
    status_subresource: false,
    field_labels: &[
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    ],
};

pub(crate) static ALL: [&ResourceType; 3] = [&PODS, &EVENTS, &NADS];

impl Resource {
    pub(crate) fn rtype(self) -> &'static ResourceType {
        match self {
            Resource::Pods => &PODS,
            Resource::NetworkAttachmentDefinitions => &NADS,
            Resource::Events => &EVENTS,
        }
    }
}

impl ResourceType {
    /// `apiVersion` of objects of this type.
    pub(crate) fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `pods` or `network-attachment-definitions.k8s.cni.cncf.io`, as used in messages.
    pub(crate) fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// Finds the type served at `group`/`version` under `plural`.
    pub(crate) fn lookup(
        group: &str,
        version: &str,
        plural: &str,
    ) -> Option<&'static ResourceType> {
        ALL.iter()
            .copied()
            .find(|rt| rt.group == group && rt.version == version && rt.plural == plural)
    }

    fn verbs(&self) -> Value {
        json!([
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update"
        ])
    }
}

/// `/api`: the core group's versions.
pub(crate) fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{ "clientCIDR": "0.0.0.0/0", "serverAddress": server_address }],
    })
}

fn group_names() -> Vec<&'static str> {
    let mut groups: Vec<&'static str> = ALL
        .iter()
        .map(|rt| rt.group)
        .filter(|g| !g.is_empty())
        .collect();
    groups.dedup();
    groups
}

fn api_group(group: &str) -> Value {
    let versions: Vec<Value> = {
        let mut v: Vec<&str> = ALL
            .iter()
            .filter(|rt| rt.group == group)
            .map(|rt| rt.version)
            .collect();
        v.dedup();
        v.iter()
            .map(|ver| json!({ "groupVersion": format!("{group}/{ver}"), "version": ver }))
            .collect()
    };
    let preferred = versions.first().cloned().unwrap_or(Value::Null);
    json!({ "name": group, "versions": versions, "preferredVersion": preferred })
}

/// `/apis`: the non-core groups.
pub(crate) fn api_group_list() -> Value {
    let groups: Vec<Value> = group_names().into_iter().map(api_group).collect();
    json!({ "kind": "APIGroupList", "apiVersion": "v1", "groups": groups })
}

/// `/apis/{group}`, if the group is served.
pub(crate) fn api_group_doc(group: &str) -> Option<Value> {
    if !group_names().contains(&group) {
        return None;
    }
    let mut g = api_group(group);
    if let Some(obj) = g.as_object_mut() {
        obj.insert("kind".into(), json!("APIGroup"));
        obj.insert("apiVersion".into(), json!("v1"));
    }
    Some(g)
}

/// `/api/v1` or `/apis/{group}/{version}`: the resource list, if that group version is served.
pub(crate) fn api_resource_list(group: &str, version: &str) -> Option<Value> {
    let types: Vec<&ResourceType> = ALL
        .iter()
        .copied()
        .filter(|rt| rt.group == group && rt.version == version)
        .collect();
    if types.is_empty() {
        return None;
    }
    let mut resources = Vec::new();
    for rt in types {
        let mut r = json!({
            "name": rt.plural,
            "singularName": rt.singular,
            "namespaced": true,
            "kind": rt.kind,
            "verbs": rt.verbs(),
        });
        if !rt.short_names.is_empty() {
            r["shortNames"] = json!(rt.short_names);
        }
        if rt.resource == Resource::Pods {
            r["categories"] = json!(["all"]);
        }
        resources.push(r);
        if rt.status_subresource {
            resources.push(json!({
                "name": format!("{}/status", rt.plural),
                "singularName": "",
                "namespaced": true,
                "kind": rt.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    }))
}
