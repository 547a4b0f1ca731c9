//! The object store and the REST semantics of writes: system fields, validation, optimistic
//! concurrency on metadata.resourceVersion, status subresource rules, finalizers.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};
use tokio::sync::Notify;

use super::patch::{json_patch, merge_patch, strategic_merge_patch, JsonPatchError};
use super::resources::{Resource, ResourceType, PODS};
use super::status::ApiError;

/// Which part of an object a write addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Subresource {
    /// The object itself (for pods: everything but status).
    Main,
    /// The `status` subresource (for pods: status and metadata, not spec).
    Status,
}

/// The PATCH flavours, by Content-Type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PatchType {
    /// application/merge-patch+json
    Merge,
    /// application/strategic-merge-patch+json
    Strategic,
    /// application/json-patch+json
    Json,
    /// application/apply-patch+yaml (server-side apply, not implemented)
    Apply,
}

impl PatchType {
    /// Parses a Content-Type header (parameters such as charset are ignored).
    pub(crate) fn from_content_type(ct: &str) -> Option<Self> {
        match ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
            .as_str()
        {
            "application/merge-patch+json" => Some(Self::Merge),
            "application/strategic-merge-patch+json" => Some(Self::Strategic),
            "application/json-patch+json" => Some(Self::Json),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => Some(Self::Apply),
            _ => None,
        }
    }
}

fn accepted_patch_types(rt: &ResourceType) -> Vec<&'static str> {
    let mut v = vec![
        "application/json-patch+json",
        "application/merge-patch+json",
    ];
    if rt.builtin {
        v.push("application/strategic-merge-patch+json");
    }
    v.push("application/apply-patch+yaml");
    v
}

type Key = (Resource, String, String);

/// All objects of one server, and the revision counter that resourceVersions come from.
pub(crate) struct Store {
    revision: u64,
    objects: BTreeMap<Key, Value>,
    uid_state: u64,
    /// Watch events, oldest first: what a watch from an older resourceVersion replays.
    events: VecDeque<WatchEvent>,
    /// Events up to this revision are gone: a watch from it or older gets 410 Expired.
    compacted: u64,
    /// Woken after every write, for the watches.
    changed: Arc<Notify>,
}

/// Most watch events kept (older ones are compacted away, as etcd does).
const MAX_EVENTS: usize = 10_000;

/// One change, as a watch streams it.
#[derive(Clone, Debug)]
pub(crate) struct WatchEvent {
    /// The revision of the write.
    pub(crate) revision: u64,
    /// The object's type.
    pub(crate) resource: Resource,
    /// The object's namespace.
    pub(crate) namespace: String,
    /// `ADDED`, `MODIFIED` or `DELETED`.
    pub(crate) kind: &'static str,
    /// The object after the write (before it, for DELETED, with the new resourceVersion).
    pub(crate) object: Value,
}

/// Seconds since the epoch, now.
fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// RFC 3339 UTC with second precision, as metav1.Time serialises.
pub(crate) fn rfc3339(secs: u64) -> String {
    let t = i64::try_from(secs)
        .ok()
        .and_then(|s| jiff::Timestamp::from_second(s).ok())
        .unwrap_or(jiff::Timestamp::MAX);
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Parses an RFC 3339 time (what [`rfc3339`] writes, or what a client sent) to Unix seconds.
pub(crate) fn parse_rfc3339(s: &str) -> Option<u64> {
    u64::try_from(s.parse::<jiff::Timestamp>().ok()?.as_second()).ok()
}

fn is_dns_label_part(part: &str) -> bool {
    !part.is_empty()
        && part.len() <= 63
        && part
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !part.starts_with('-')
        && !part.ends_with('-')
}

/// RFC 1123 subdomain, as object names must be.
pub(crate) fn is_dns_subdomain(name: &str) -> bool {
    name.len() <= 253 && name.split('.').all(is_dns_label_part)
}

fn is_name_part(name: &str, upper_ok: bool) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| {
            b.is_ascii_digit()
                || b.is_ascii_lowercase()
                || (upper_ok && b.is_ascii_uppercase())
                || matches!(b, b'-' | b'_' | b'.')
        })
        && name
            .as_bytes()
            .first()
            .is_some_and(u8::is_ascii_alphanumeric)
        && name
            .as_bytes()
            .last()
            .is_some_and(u8::is_ascii_alphanumeric)
}

/// A qualified name (`prefix/name` or `name`), as label and annotation keys must be.
pub(crate) fn is_qualified_name(key: &str) -> bool {
    match key.split_once('/') {
        Some((prefix, name)) => is_dns_subdomain(prefix) && is_name_part(name, true),
        None => is_name_part(key, true),
    }
}

fn is_label_value(v: &str) -> bool {
    v.is_empty() || is_name_part(v, true)
}

fn meta_str<'a>(obj: &'a Value, field: &str) -> &'a str {
    obj.get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn metadata_mut(obj: &mut Value) -> Option<&mut Map<String, Value>> {
    obj.as_object_mut()?.get_mut("metadata")?.as_object_mut()
}

fn set_meta(obj: &mut Value, field: &str, value: Value) {
    if let Some(meta) = metadata_mut(obj) {
        if value.is_null() {
            meta.remove(field);
        } else {
            meta.insert(field.to_string(), value);
        }
    }
}

/// Checks the shape of what a typed decode would reject (answered 400 like a decode error).
fn check_shape(rt: &ResourceType, obj: &mut Value) -> Result<(), ApiError> {
    let Some(map) = obj.as_object_mut() else {
        return Err(ApiError::bad_request(
            "the body of the request must be a JSON object",
        ));
    };
    let expected_api = rt.api_version();
    match map.get("apiVersion") {
        None => {}
        Some(Value::String(v)) if v.is_empty() || *v == expected_api => {}
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({}) does not match the expected API version ({expected_api})",
                other.as_str().unwrap_or("?")
            )))
        }
    }
    match map.get("kind") {
        None => {}
        Some(Value::String(k)) if k.is_empty() || k == rt.kind => {}
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({}) does not match the expected kind ({})",
                other.as_str().unwrap_or("?"),
                rt.kind
            )))
        }
    }
    map.insert("apiVersion".into(), Value::String(expected_api));
    map.insert("kind".into(), Value::String(rt.kind.to_string()));
    let meta = map.entry("metadata").or_insert_with(|| json!({}));
    let Some(meta) = meta.as_object() else {
        return Err(ApiError::bad_request(format!(
            "json: cannot unmarshal {} into Go struct field {}.metadata of type v1.ObjectMeta",
            type_name(meta),
            rt.kind
        )));
    };
    for field in [
        "name",
        "namespace",
        "generateName",
        "resourceVersion",
        "uid",
        "creationTimestamp",
    ] {
        if let Some(v) = meta.get(field) {
            if !v.is_string() && !v.is_null() {
                return Err(ApiError::bad_request(format!(
                    "json: cannot unmarshal {} into Go struct field ObjectMeta.metadata.{field} of type string",
                    type_name(v)
                )));
            }
        }
    }
    for field in ["labels", "annotations"] {
        match meta.get(field) {
            None | Some(Value::Null) => {}
            Some(Value::Object(m)) => {
                if let Some((_, v)) = m.iter().find(|(_, v)| !v.is_string()) {
                    return Err(ApiError::bad_request(format!(
                        "json: cannot unmarshal {} into Go struct field ObjectMeta.metadata.{field} of type string",
                        type_name(v)
                    )));
                }
            }
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "json: cannot unmarshal {} into Go struct field ObjectMeta.metadata.{field} of type map[string]string",
                    type_name(other)
                )))
            }
        }
    }
    Ok(())
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Field validation (answered 422 Invalid).
fn validate(rt: &ResourceType, obj: &Value) -> Result<(), ApiError> {
    let name = meta_str(obj, "name");
    let invalid = |field: &str, detail: String| ApiError::invalid(rt, name, field, &detail);
    if !is_dns_subdomain(name) {
        return Err(invalid(
            "metadata.name",
            format!("Invalid value: {name:?}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"),
        ));
    }
    let meta = obj.get("metadata");
    if let Some(Value::Object(labels)) = meta.and_then(|m| m.get("labels")) {
        for (k, v) in labels {
            if !is_qualified_name(k) {
                return Err(invalid(
                    "metadata.labels",
                    format!("Invalid value: {k:?}: not a qualified name"),
                ));
            }
            let v = v.as_str().unwrap_or("");
            if !is_label_value(v) {
                return Err(invalid("metadata.labels", format!("Invalid value: {v:?}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character")));
            }
        }
    }
    if let Some(Value::Object(annotations)) = meta.and_then(|m| m.get("annotations")) {
        let mut total = 0usize;
        for (k, v) in annotations {
            if !is_qualified_name(&k.to_ascii_lowercase()) {
                return Err(invalid(
                    "metadata.annotations",
                    format!("Invalid value: {k:?}: not a qualified name"),
                ));
            }
            total += k.len() + v.as_str().map_or(0, str::len);
        }
        if total > 256 * 1024 {
            return Err(invalid(
                "metadata.annotations",
                "Too long: must have at most 262144 bytes".to_string(),
            ));
        }
    }
    match rt.resource {
        Resource::Pods => {
            let containers = obj.pointer("/spec/containers").and_then(Value::as_array);
            let Some(containers) = containers.filter(|c| !c.is_empty()) else {
                return Err(invalid("spec.containers", "Required value".into()));
            };
            for (i, c) in containers.iter().enumerate() {
                if c.get("name")
                    .and_then(Value::as_str)
                    .is_none_or(|n| !is_dns_label_part(n))
                {
                    return Err(invalid(
                        &format!("spec.containers[{i}].name"),
                        "Required value: a DNS-1123 label".into(),
                    ));
                }
                if c.get("image")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
                {
                    return Err(invalid(
                        &format!("spec.containers[{i}].image"),
                        "Required value".into(),
                    ));
                }
            }
            if let Some(node) = obj.pointer("/spec/nodeName") {
                if !node.is_string() {
                    return Err(ApiError::bad_request(
                        "json: cannot unmarshal into Go struct field PodSpec.spec.nodeName of type string",
                    ));
                }
            }
        }
        Resource::NetworkAttachmentDefinitions => {
            if let Some(config) = obj.pointer("/spec/config") {
                if !config.is_string() {
                    let t = type_name(config);
                    return Err(invalid(
                        "spec.config",
                        format!("Invalid value: \"{t}\": spec.config in body must be of type string: \"{t}\""),
                    ));
                }
            }
            if let Some(spec) = obj.get("spec") {
                if !spec.is_object() && !spec.is_null() {
                    return Err(invalid(
                        "spec",
                        "Invalid value: spec in body must be of type object".into(),
                    ));
                }
            }
        }
        Resource::Events => {}
    }
    Ok(())
}

/// Pod spec fields an update may change (validation.ValidatePodUpdate): container images,
/// activeDeadlineSeconds, tolerations (additions), terminationGracePeriodSeconds. Simplified:
/// images and those fields are masked before comparing.
fn pod_spec_mutable_masked(spec: &Value) -> Value {
    let mut s = spec.clone();
    if let Some(map) = s.as_object_mut() {
        for field in [
            "activeDeadlineSeconds",
            "tolerations",
            "terminationGracePeriodSeconds",
        ] {
            map.remove(field);
        }
        for list in ["containers", "initContainers", "ephemeralContainers"] {
            if let Some(Value::Array(items)) = map.get_mut(list) {
                for c in items {
                    if let Some(c) = c.as_object_mut() {
                        c.remove("image");
                    }
                }
            }
        }
    }
    s
}

impl Store {
    pub(crate) fn new() -> Self {
        let seed = RandomState::new().build_hasher().finish() ^ now_secs();
        Self {
            revision: 1,
            objects: BTreeMap::new(),
            uid_state: seed,
            events: VecDeque::new(),
            compacted: 1,
            changed: Arc::new(Notify::new()),
        }
    }

    /// Stores `obj` under `key` and journals the write (ADDED or MODIFIED).
    fn put(&mut self, key: Key, obj: Value) {
        let kind = if self.objects.contains_key(&key) {
            "MODIFIED"
        } else {
            "ADDED"
        };
        self.journal(&key, kind, obj.clone());
        self.objects.insert(key, obj);
    }

    /// Removes `key` and journals the deletion with `last` (the object as deleted).
    fn take(&mut self, key: &Key, last: Value) -> Option<Value> {
        let removed = self.objects.remove(key);
        if removed.is_some() {
            self.journal(key, "DELETED", last);
        }
        removed
    }

    fn journal(&mut self, key: &Key, kind: &'static str, object: Value) {
        self.events.push_back(WatchEvent {
            revision: self.revision,
            resource: key.0,
            namespace: key.1.clone(),
            kind,
            object,
        });
        while self.events.len() > MAX_EVENTS {
            if let Some(gone) = self.events.pop_front() {
                self.compacted = gone.revision;
            }
        }
        self.changed.notify_waiters();
    }

    /// The events after `revision`, or `None` when some of them were compacted away (the
    /// watcher must relist: 410 Expired).
    pub(crate) fn events_after(&self, revision: u64) -> Option<Vec<WatchEvent>> {
        if revision < self.compacted {
            return None;
        }
        Some(
            self.events
                .iter()
                .filter(|e| e.revision > revision)
                .cloned()
                .collect(),
        )
    }

    /// Forgets the watch history: a watch resuming from any earlier revision gets 410.
    pub(crate) fn compact(&mut self) {
        self.events.clear();
        self.compacted = self.revision;
    }

    /// What watches wait on.
    pub(crate) fn changed(&self) -> Arc<Notify> {
        self.changed.clone()
    }

    /// The current revision (the resourceVersion of the latest write).
    pub(crate) fn revision(&self) -> u64 {
        self.revision
    }

    fn next_revision(&mut self) -> String {
        self.revision += 1;
        self.revision.to_string()
    }

    /// A random (version 4 layout) UID.
    pub(crate) fn new_uid(&mut self) -> String {
        let mut next = || {
            // splitmix64
            self.uid_state = self.uid_state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.uid_state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        let (a, b) = (next(), next());
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0x0fff,
            ((b >> 48) & 0x3fff) | 0x8000,
            b & 0xffff_ffff_ffff
        )
    }

    fn key(rt: &ResourceType, ns: &str, name: &str) -> Key {
        (rt.resource, ns.to_string(), name.to_string())
    }

    /// GET one object.
    pub(crate) fn get(&self, rt: &ResourceType, ns: &str, name: &str) -> Result<Value, ApiError> {
        self.objects
            .get(&Self::key(rt, ns, name))
            .cloned()
            .ok_or_else(|| ApiError::not_found(rt, name))
    }

    /// Objects of a type in a namespace (or all namespaces), ordered by namespace then name.
    pub(crate) fn list<'a>(
        &'a self,
        rt: &'a ResourceType,
        ns: Option<&'a str>,
    ) -> impl Iterator<Item = &'a Value> + 'a {
        self.objects
            .iter()
            .filter(move |((r, n, _), _)| *r == rt.resource && ns.is_none_or(|ns| ns == n))
            .map(|(_, v)| v)
    }

    /// POST: creates an object with server-set uid, creationTimestamp and resourceVersion.
    pub(crate) fn create(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        mut obj: Value,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        check_shape(rt, &mut obj)?;
        let body_ns = meta_str(&obj, "namespace").to_string();
        if !body_ns.is_empty() && body_ns != ns {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        let mut name = meta_str(&obj, "name").to_string();
        if name.is_empty() {
            let generate = meta_str(&obj, "generateName").to_string();
            if generate.is_empty() {
                return Err(ApiError::invalid(
                    rt,
                    "",
                    "metadata.name",
                    "Required value: name or generateName is required",
                ));
            }
            let suffix: String = self
                .new_uid()
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .take(5)
                .collect();
            name = format!("{generate}{suffix}");
        }
        set_meta(&mut obj, "name", json!(name));
        set_meta(&mut obj, "namespace", json!(ns));
        for field in [
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "managedFields",
        ] {
            set_meta(&mut obj, field, Value::Null);
        }
        validate(rt, &obj)?;
        if self.objects.contains_key(&Self::key(rt, ns, &name)) {
            return Err(ApiError::already_exists(rt, &name));
        }
        let uid = self.new_uid();
        set_meta(&mut obj, "uid", json!(uid));
        set_meta(&mut obj, "creationTimestamp", json!(rfc3339(now_secs())));
        if !rt.builtin {
            set_meta(&mut obj, "generation", json!(1));
        }
        if rt.resource == Resource::Pods {
            if let Some(map) = obj.as_object_mut() {
                map.insert(
                    "status".into(),
                    json!({ "phase": "Pending", "qosClass": "BestEffort" }),
                );
            }
        }
        if dry_run {
            return Ok(obj);
        }
        let rv = self.next_revision();
        set_meta(&mut obj, "resourceVersion", json!(rv));
        self.put(Self::key(rt, ns, &name), obj.clone());
        Ok(obj)
    }

    /// Inserts an object as given (test seeding): keeps a given uid, fills the other system
    /// fields, sets a fresh resourceVersion. Fails with AlreadyExists.
    pub(crate) fn seed(&mut self, rt: &ResourceType, mut obj: Value) -> Result<Value, ApiError> {
        check_shape(rt, &mut obj)?;
        let ns = meta_str(&obj, "namespace").to_string();
        let name = meta_str(&obj, "name").to_string();
        if ns.is_empty() {
            set_meta(&mut obj, "namespace", json!("default"));
            return self.seed(rt, obj);
        }
        validate(rt, &obj)?;
        if self.objects.contains_key(&Self::key(rt, &ns, &name)) {
            return Err(ApiError::already_exists(rt, &name));
        }
        if meta_str(&obj, "uid").is_empty() {
            let uid = self.new_uid();
            set_meta(&mut obj, "uid", json!(uid));
        }
        if meta_str(&obj, "creationTimestamp").is_empty() {
            set_meta(&mut obj, "creationTimestamp", json!(rfc3339(now_secs())));
        }
        if !rt.builtin && obj.pointer("/metadata/generation").is_none() {
            set_meta(&mut obj, "generation", json!(1));
        }
        let rv = self.next_revision();
        set_meta(&mut obj, "resourceVersion", json!(rv));
        self.put(Self::key(rt, &ns, &name), obj.clone());
        Ok(obj)
    }

    /// PUT: replaces an object; metadata.resourceVersion must match unless the type allows
    /// unconditional updates.
    pub(crate) fn update(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        mut obj: Value,
        sub: Subresource,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        check_shape(rt, &mut obj)?;
        let current = self.get(rt, ns, name)?;
        if meta_str(&obj, "resourceVersion").is_empty() && !rt.allow_unconditional_update {
            return Err(ApiError::invalid(
                rt,
                name,
                "metadata.resourceVersion",
                "Invalid value: 0x0: must be specified for an update",
            ));
        }
        self.write_update(rt, ns, name, current, obj, sub, dry_run)
    }

    /// PATCH: applies a patch to the stored object, then writes it like an update. A patch that
    /// sets metadata.resourceVersion conflicts when that version is stale.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn patch(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        patch_type: PatchType,
        body: &[u8],
        sub: Subresource,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        if patch_type == PatchType::Apply || (patch_type == PatchType::Strategic && !rt.builtin) {
            return Err(ApiError::unsupported_patch(&accepted_patch_types(rt)));
        }
        let current = self.get(rt, ns, name)?;
        let patch: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
        let mut patched = current.clone();
        match patch_type {
            PatchType::Merge => {
                if !patch.is_object() {
                    return Err(ApiError::bad_request("a merge patch must be a JSON object"));
                }
                merge_patch(&mut patched, &patch);
            }
            PatchType::Strategic => {
                if !patch.is_object() {
                    return Err(ApiError::bad_request(
                        "a strategic merge patch must be a JSON object",
                    ));
                }
                strategic_merge_patch(&mut patched, &patch).map_err(ApiError::bad_request)?;
            }
            PatchType::Json => match json_patch(&mut patched, &patch) {
                Ok(()) => {}
                Err(JsonPatchError::Decode(e)) => return Err(ApiError::bad_request(e)),
                Err(JsonPatchError::Apply(e)) => return Err(ApiError::new(422, e)),
            },
            PatchType::Apply => {}
        }
        if !patched.is_object() {
            return Err(ApiError::new(
                422,
                "the patched object is not a JSON object",
            ));
        }
        check_shape(rt, &mut patched)?;
        if meta_str(&patched, "resourceVersion").is_empty() {
            let rv = meta_str(&current, "resourceVersion").to_string();
            set_meta(&mut patched, "resourceVersion", json!(rv));
        }
        self.write_update(rt, ns, name, current, patched, sub, dry_run)
    }

    /// The shared part of PUT and PATCH.
    #[allow(clippy::too_many_arguments)]
    fn write_update(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        current: Value,
        mut obj: Value,
        sub: Subresource,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let body_name = meta_str(&obj, "name");
        if body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        let body_ns = meta_str(&obj, "namespace");
        if !body_ns.is_empty() && body_ns != ns {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        let rv = meta_str(&obj, "resourceVersion");
        let current_rv = meta_str(&current, "resourceVersion");
        if !rv.is_empty() && rv != current_rv {
            return Err(ApiError::conflict(rt, name));
        }
        let uid = meta_str(&obj, "uid");
        let current_uid = meta_str(&current, "uid");
        if !uid.is_empty() && uid != current_uid {
            return Err(ApiError::conflict_with(
                rt,
                name,
                &format!("Precondition failed: UID in precondition: {uid}, UID in object meta: {current_uid}"),
            ));
        }
        // System fields come from the stored object.
        for field in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
        ] {
            let old = current
                .get("metadata")
                .and_then(|m| m.get(field))
                .cloned()
                .unwrap_or(Value::Null);
            set_meta(&mut obj, field, old);
        }
        set_meta(&mut obj, "namespace", json!(ns));
        if rt.status_subresource {
            let Some(map) = obj.as_object_mut() else {
                return Err(ApiError::internal("object is not a map"));
            };
            match sub {
                Subresource::Main => match current.get("status") {
                    Some(status) => {
                        map.insert("status".into(), status.clone());
                    }
                    None => {
                        map.remove("status");
                    }
                },
                Subresource::Status => {
                    match current.get("spec") {
                        Some(spec) => map.insert("spec".into(), spec.clone()),
                        None => map.remove("spec"),
                    };
                    let owners = current
                        .pointer("/metadata/ownerReferences")
                        .cloned()
                        .unwrap_or(Value::Null);
                    set_meta(&mut obj, "ownerReferences", owners);
                }
            }
        }
        if rt.resource == Resource::Pods && sub == Subresource::Main {
            let old_spec = pod_spec_mutable_masked(current.get("spec").unwrap_or(&Value::Null));
            let new_spec = pod_spec_mutable_masked(obj.get("spec").unwrap_or(&Value::Null));
            if old_spec != new_spec {
                return Err(ApiError::invalid(
                    &PODS,
                    name,
                    "spec",
                    "Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
                ));
            }
        }
        validate(rt, &obj)?;
        if !rt.builtin && current.get("spec") != obj.get("spec") {
            let generation = current
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            set_meta(&mut obj, "generation", json!(generation.saturating_add(1)));
        }
        // A write that changes nothing is not a write: the resourceVersion stays.
        set_meta(&mut obj, "resourceVersion", json!(current_rv));
        if obj == current {
            return Ok(obj);
        }
        if dry_run {
            return Ok(obj);
        }
        let deleting = current.pointer("/metadata/deletionTimestamp").is_some();
        let finalizers_left = obj
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
        let new_rv = self.next_revision();
        set_meta(&mut obj, "resourceVersion", json!(new_rv));
        if deleting && !finalizers_left {
            self.take(&Self::key(rt, ns, name), obj.clone());
        } else {
            self.put(Self::key(rt, ns, name), obj.clone());
        }
        Ok(obj)
    }

    /// DELETE: removes the object (or, while it has finalizers, marks it with a
    /// deletionTimestamp) after checking the uid/resourceVersion preconditions.
    pub(crate) fn delete(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        precondition_uid: Option<&str>,
        precondition_rv: Option<&str>,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let mut current = self.get(rt, ns, name)?;
        if let Some(uid) = precondition_uid {
            let actual = meta_str(&current, "uid");
            if uid != actual {
                return Err(ApiError::conflict_with(
                    rt,
                    name,
                    &format!("Precondition failed: UID in precondition: {uid}, UID in object meta: {actual}"),
                ));
            }
        }
        if let Some(rv) = precondition_rv {
            let actual = meta_str(&current, "resourceVersion");
            if rv != actual {
                return Err(ApiError::conflict_with(
                    rt,
                    name,
                    &format!("Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {actual}"),
                ));
            }
        }
        if dry_run {
            return Ok(current);
        }
        let has_finalizers = current
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
        let rv = self.next_revision();
        if has_finalizers {
            if current.pointer("/metadata/deletionTimestamp").is_none() {
                set_meta(
                    &mut current,
                    "deletionTimestamp",
                    json!(rfc3339(now_secs())),
                );
                set_meta(&mut current, "deletionGracePeriodSeconds", json!(0));
            }
            set_meta(&mut current, "resourceVersion", json!(rv));
            self.put(Self::key(rt, ns, name), current.clone());
        } else {
            set_meta(&mut current, "resourceVersion", json!(rv));
            self.take(&Self::key(rt, ns, name), current.clone());
        }
        Ok(current)
    }

    /// Changes a stored object in place (test control), bumping its resourceVersion.
    pub(crate) fn modify(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        f: impl FnOnce(&mut Value),
    ) -> Result<Value, ApiError> {
        let key = Self::key(rt, ns, name);
        let mut obj = self
            .objects
            .get(&key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(rt, name))?;
        f(&mut obj);
        let rv = self.next_revision();
        set_meta(&mut obj, "resourceVersion", json!(rv));
        self.put(key, obj.clone());
        Ok(obj)
    }

    /// Removes a stored object without preconditions or finalizers (test control).
    pub(crate) fn remove(&mut self, rt: &ResourceType, ns: &str, name: &str) -> Option<Value> {
        let key = Self::key(rt, ns, name);
        let mut last = self.objects.get(&key).cloned()?;
        self.revision += 1;
        set_meta(
            &mut last,
            "resourceVersion",
            json!(self.revision.to_string()),
        );
        self.take(&key, last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube_api::resources::NADS;

    fn pod(name: &str) -> Value {
        json!({"metadata": {"name": name}, "spec": {"containers": [{"name": "app", "image": "img"}]}})
    }

    #[test]
    fn timestamps_round_trip() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_767_225_599), "2025-12-31T23:59:59Z");
        for secs in [0, 951_782_400, 1_767_225_599, 4_102_444_800] {
            assert_eq!(parse_rfc3339(&rfc3339(secs)), Some(secs));
        }
    }

    #[test]
    fn names_and_keys() {
        assert!(is_dns_subdomain("web-1.example"));
        assert!(!is_dns_subdomain("Web"));
        assert!(!is_dns_subdomain("-a"));
        assert!(is_qualified_name("k8s.v1.cni.cncf.io/network-status"));
        assert!(is_qualified_name("v1.multus-cni.io/default-network"));
        assert!(!is_qualified_name("bad key"));
        assert!(!is_qualified_name("a/b/c"));
    }

    #[test]
    fn create_update_conflict_and_noop() {
        let mut s = Store::new();
        let created = s.create(&PODS, "ns", pod("p"), false).unwrap();
        let rv1 = meta_str(&created, "resourceVersion").to_string();
        assert_eq!(meta_str(&created, "uid").len(), 36);
        assert_eq!(created["status"]["phase"], "Pending");
        assert_eq!(
            s.create(&PODS, "ns", pod("p"), false).unwrap_err().reason,
            "AlreadyExists"
        );

        let noop = s
            .patch(
                &PODS,
                "ns",
                "p",
                PatchType::Merge,
                b"{}",
                Subresource::Main,
                false,
            )
            .unwrap();
        assert_eq!(meta_str(&noop, "resourceVersion"), rv1);

        let patched = s
            .patch(
                &PODS,
                "ns",
                "p",
                PatchType::Merge,
                br#"{"metadata":{"annotations":{"a":"b"}}}"#,
                Subresource::Main,
                false,
            )
            .unwrap();
        let rv2 = meta_str(&patched, "resourceVersion").to_string();
        assert_ne!(rv1, rv2);

        let mut stale = created.clone();
        stale["metadata"]["labels"] = json!({"x": "y"});
        let err = s
            .update(&PODS, "ns", "p", stale, Subresource::Main, false)
            .unwrap_err();
        assert_eq!((err.code, err.reason), (409, "Conflict"));

        let stale_patch =
            format!(r#"{{"metadata":{{"resourceVersion":"{rv1}","annotations":{{"c":"d"}}}}}}"#);
        let err = s
            .patch(
                &PODS,
                "ns",
                "p",
                PatchType::Merge,
                stale_patch.as_bytes(),
                Subresource::Main,
                false,
            )
            .unwrap_err();
        assert_eq!(err.code, 409);

        let mut no_rv = patched.clone();
        no_rv["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("resourceVersion");
        assert_eq!(
            s.update(&PODS, "ns", "p", no_rv, Subresource::Main, false)
                .unwrap_err()
                .code,
            422
        );

        let mut spec_change = patched.clone();
        spec_change["spec"]["nodeName"] = json!("other");
        assert_eq!(
            s.update(&PODS, "ns", "p", spec_change, Subresource::Main, false)
                .unwrap_err()
                .code,
            422
        );

        let mut status_change = patched.clone();
        status_change["status"] = json!({"phase": "Running"});
        let kept = s
            .update(
                &PODS,
                "ns",
                "p",
                status_change.clone(),
                Subresource::Main,
                false,
            )
            .unwrap();
        assert_eq!(
            kept["status"]["phase"], "Pending",
            "PUT on the pod ignores status"
        );
        let st = s
            .update(&PODS, "ns", "p", status_change, Subresource::Status, false)
            .unwrap();
        assert_eq!(st["status"]["phase"], "Running");
    }

    #[test]
    fn validation_errors() {
        let mut s = Store::new();
        assert_eq!(
            s.create(&PODS, "ns", json!({"metadata": {"name": "p"}}), false)
                .unwrap_err()
                .code,
            422
        );
        assert_eq!(
            s.create(&PODS, "ns", pod("Bad_Name"), false)
                .unwrap_err()
                .code,
            422
        );
        let mut bad = pod("p");
        bad["metadata"]["annotations"] = json!({"a": 1});
        assert_eq!(s.create(&PODS, "ns", bad, false).unwrap_err().code, 400);
        let mut bad_ns = pod("p");
        bad_ns["metadata"]["namespace"] = json!("other");
        assert_eq!(s.create(&PODS, "ns", bad_ns, false).unwrap_err().code, 400);
        let nad = json!({"metadata": {"name": "n"}, "spec": {"config": {"not": "a string"}}});
        assert_eq!(s.create(&NADS, "ns", nad, false).unwrap_err().code, 422);
        let nad = json!({"apiVersion": "v1", "metadata": {"name": "n"}, "spec": {"config": "{}"}});
        assert_eq!(s.create(&NADS, "ns", nad, false).unwrap_err().code, 400);
        let nad = json!({"metadata": {"name": "n"}, "spec": {"config": "{}"}});
        let created = s.create(&NADS, "ns", nad, false).unwrap();
        assert_eq!(created["apiVersion"], "k8s.cni.cncf.io/v1");
        assert_eq!(created["metadata"]["generation"], 1);
        let err = s
            .patch(
                &NADS,
                "ns",
                "n",
                PatchType::Strategic,
                b"{}",
                Subresource::Main,
                false,
            )
            .unwrap_err();
        assert_eq!(err.code, 415);
    }

    #[test]
    fn finalizers_delay_deletion() {
        let mut s = Store::new();
        let mut p = pod("p");
        p["metadata"]["finalizers"] = json!(["example.com/keep"]);
        s.create(&PODS, "ns", p, false).unwrap();
        let marked = s.delete(&PODS, "ns", "p", None, None, false).unwrap();
        assert!(marked["metadata"]["deletionTimestamp"].is_string());
        assert!(s.get(&PODS, "ns", "p").is_ok());
        s.patch(
            &PODS,
            "ns",
            "p",
            PatchType::Json,
            br#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
            Subresource::Main,
            false,
        )
        .unwrap();
        assert_eq!(s.get(&PODS, "ns", "p").unwrap_err().code, 404);
    }
}
