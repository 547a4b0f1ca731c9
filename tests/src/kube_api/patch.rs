//! The three PATCH flavours kube-apiserver accepts as JSON: RFC 7386 merge patch and RFC 6902
//! JSON patch (both by the `json-patch` crate, the one kube's `Patch::Json` uses), and strategic
//! merge patch (merge keys for the pod fields that have them), which only Kubernetes defines and
//! is written here.

use serde_json::{Map, Value};

/// RFC 7386 JSON merge patch: objects merge recursively, `null` deletes, anything else replaces.
pub(crate) fn merge_patch(target: &mut Value, patch: &Value) {
    json_patch::merge(target, patch);
}

/// How a list field is merged by a strategic merge patch.
enum ListStrategy {
    /// The patch's list replaces the original (no patchStrategy).
    Replace,
    /// Object elements are merged by this key (patchStrategy merge, patchMergeKey).
    MergeKey(&'static str),
    /// Primitive elements are merged as a set union (patchStrategy merge on []string).
    Primitive,
}

/// Merge keys of the pod fields that have a patch strategy (k8s.io/api/core/v1 struct tags).
/// `[]` stands for "each element of a list".
fn list_strategy(path: &str) -> ListStrategy {
    let field = path.rsplit('.').next().unwrap_or(path);
    match (path, field) {
        ("metadata.finalizers", _) => ListStrategy::Primitive,
        ("metadata.ownerReferences", _) => ListStrategy::MergeKey("uid"),
        ("spec.containers" | "spec.initContainers" | "spec.ephemeralContainers", _) => {
            ListStrategy::MergeKey("name")
        }
        (
            "spec.volumes"
            | "spec.imagePullSecrets"
            | "spec.schedulingGates"
            | "spec.resourceClaims",
            _,
        ) => ListStrategy::MergeKey("name"),
        ("spec.hostAliases", _) => ListStrategy::MergeKey("ip"),
        ("status.conditions", _) => ListStrategy::MergeKey("type"),
        ("status.podIPs" | "status.hostIPs", _) => ListStrategy::MergeKey("ip"),
        ("status.resourceClaimStatuses", _) => ListStrategy::MergeKey("name"),
        (p, "env") if p.ends_with("Containers[].env") || p.ends_with("containers[].env") => {
            ListStrategy::MergeKey("name")
        }
        (p, "ports") if p.contains("ontainers[]") => ListStrategy::MergeKey("containerPort"),
        (p, "volumeMounts") if p.contains("ontainers[]") => ListStrategy::MergeKey("mountPath"),
        (p, "volumeDevices") if p.contains("ontainers[]") => ListStrategy::MergeKey("devicePath"),
        (p, "resizePolicy") if p.contains("ontainers[]") => ListStrategy::MergeKey("resourceName"),
        _ => ListStrategy::Replace,
    }
}

/// Kubernetes strategic merge patch for built-in types. Maps merge like a merge patch and honour
/// the `$patch: replace|delete`, `$retainKeys` and `$deleteFromPrimitiveList/<field>` directives;
/// lists with a patch strategy merge by key, other lists are replaced. `$setElementOrder`
/// directives are accepted and ignored (order of merged lists is: original, then new elements).
pub(crate) fn strategic_merge_patch(target: &mut Value, patch: &Value) -> Result<(), String> {
    strategic_map(target, patch, "")
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn strategic_map(target: &mut Value, patch: &Value, path: &str) -> Result<(), String> {
    let Value::Object(patch_map) = patch else {
        *target = patch.clone();
        return Ok(());
    };
    match patch_map.get("$patch").map(|v| v.as_str()) {
        None => {}
        Some(Some("replace")) => {
            let mut replacement = patch_map.clone();
            replacement.remove("$patch");
            *target = Value::Object(replacement);
            return Ok(());
        }
        Some(Some("delete")) => {
            *target = Value::Null;
            return Ok(());
        }
        Some(Some("merge")) => {}
        Some(other) => return Err(format!("unknown patch type: {other:?} in {path}")),
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(target_map) = target else {
        return Ok(());
    };
    if let Some(retain) = patch_map.get("$retainKeys") {
        let keys: Vec<&str> = retain
            .as_array()
            .ok_or_else(|| format!("$retainKeys in {path} must be a list"))?
            .iter()
            .filter_map(Value::as_str)
            .collect();
        target_map.retain(|k, _| keys.contains(&k.as_str()));
    }
    for (key, value) in patch_map {
        if key == "$patch" || key == "$retainKeys" || key.starts_with("$setElementOrder/") {
            continue;
        }
        if let Some(field) = key.strip_prefix("$deleteFromPrimitiveList/") {
            let remove = value
                .as_array()
                .ok_or_else(|| format!("{key} in {path} must be a list"))?;
            if let Some(Value::Array(items)) = target_map.get_mut(field) {
                items.retain(|item| !remove.contains(item));
            }
            continue;
        }
        if key.starts_with('$') {
            return Err(format!("unknown directive {key} in {path}"));
        }
        if value.is_null() {
            target_map.remove(key);
            continue;
        }
        let child_path = join(path, key);
        let slot = target_map.entry(key.clone()).or_insert(Value::Null);
        match value {
            Value::Object(_) => {
                strategic_map(slot, value, &child_path)?;
                if slot.is_null() {
                    target_map.remove(key);
                }
            }
            Value::Array(items) => strategic_list(slot, items, &child_path)?,
            _ => *slot = value.clone(),
        }
    }
    Ok(())
}

fn strategic_list(target: &mut Value, patch: &[Value], path: &str) -> Result<(), String> {
    // `[{"$patch": "replace"}, ...]` replaces the list whatever the strategy.
    let replace = patch
        .iter()
        .any(|e| e.get("$patch").and_then(Value::as_str) == Some("replace"));
    if replace {
        *target = Value::Array(
            patch
                .iter()
                .filter(|e| e.get("$patch").is_none())
                .cloned()
                .collect(),
        );
        return Ok(());
    }
    match list_strategy(path) {
        ListStrategy::Replace => *target = Value::Array(patch.to_vec()),
        ListStrategy::Primitive => {
            let mut merged = match target {
                Value::Array(items) => items.clone(),
                _ => Vec::new(),
            };
            for item in patch {
                if !merged.contains(item) {
                    merged.push(item.clone());
                }
            }
            *target = Value::Array(merged);
        }
        ListStrategy::MergeKey(merge_key) => {
            let mut merged = match target {
                Value::Array(items) => items.clone(),
                _ => Vec::new(),
            };
            let element_path = format!("{path}[]");
            for item in patch {
                let Some(key_value) = item.get(merge_key) else {
                    return Err(format!(
                        "map: {item} does not contain declared merge key: {merge_key} (in {path})"
                    ));
                };
                let position = merged
                    .iter()
                    .position(|e| e.get(merge_key) == Some(key_value));
                let directive = item.get("$patch").and_then(Value::as_str);
                match (directive, position) {
                    (Some("delete"), Some(i)) => {
                        merged.remove(i);
                    }
                    (Some("delete"), None) => {}
                    (_, Some(i)) => strategic_map(&mut merged[i], item, &element_path)?,
                    (_, None) => {
                        let mut fresh = Value::Object(Map::new());
                        strategic_map(&mut fresh, item, &element_path)?;
                        merged.push(fresh);
                    }
                }
            }
            *target = Value::Array(merged);
        }
    }
    Ok(())
}

/// Why a JSON patch could not be used.
#[derive(Debug, PartialEq)]
pub(crate) enum JsonPatchError {
    /// The document is not a list of operations (answered 400).
    Decode(String),
    /// An operation failed, including a failed `test` (answered 422).
    Apply(String),
}

/// RFC 6902 JSON patch: add, remove, replace, move, copy and test, applied atomically.
pub(crate) fn json_patch(target: &mut Value, patch: &Value) -> Result<(), JsonPatchError> {
    if !patch.is_array() {
        return Err(JsonPatchError::Decode(
            "a JSON patch must be a list of operations".into(),
        ));
    }
    let ops: json_patch::Patch = serde_json::from_value(patch.clone())
        .map_err(|e| JsonPatchError::Decode(format!("invalid JSON patch: {e}")))?;
    // Applied to a copy: a failed operation leaves the object as it was.
    let mut doc = target.clone();
    json_patch::patch_unsafe(&mut doc, &ops).map_err(|e| JsonPatchError::Apply(e.to_string()))?;
    *target = doc;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_follows_rfc7386_examples() {
        let mut doc = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        merge_patch(&mut doc, &json!({"a": "z", "c": {"f": null}}));
        assert_eq!(doc, json!({"a": "z", "c": {"d": "e"}}));
        let mut doc = json!({"a": [1, 2]});
        merge_patch(&mut doc, &json!({"a": [3]}));
        assert_eq!(doc, json!({"a": [3]}));
        let mut doc = json!({"a": "x"});
        merge_patch(&mut doc, &json!({"b": {"c": null, "d": 1}}));
        assert_eq!(doc, json!({"a": "x", "b": {"d": 1}}));
    }

    #[test]
    fn strategic_merge_merges_containers_by_name_and_maps_like_merge_patch() {
        let mut pod = json!({
            "metadata": {"annotations": {"a": "1", "b": "2"}, "finalizers": ["x"]},
            "spec": {"containers": [{"name": "app", "image": "a:1"}, {"name": "side", "image": "s:1"}],
                     "tolerations": [{"key": "k"}]},
        });
        let patch = json!({
            "metadata": {"annotations": {"a": null, "c": "3"}, "finalizers": ["y"]},
            "spec": {"containers": [{"name": "app", "image": "a:2"}, {"name": "side", "$patch": "delete"},
                                    {"name": "new", "image": "n:1"}],
                     "tolerations": [{"key": "other"}]},
        });
        strategic_merge_patch(&mut pod, &patch).unwrap();
        assert_eq!(pod["metadata"]["annotations"], json!({"b": "2", "c": "3"}));
        assert_eq!(pod["metadata"]["finalizers"], json!(["x", "y"]));
        assert_eq!(
            pod["spec"]["containers"],
            json!([{"name": "app", "image": "a:2"}, {"name": "new", "image": "n:1"}])
        );
        assert_eq!(pod["spec"]["tolerations"], json!([{"key": "other"}]));
    }

    #[test]
    fn strategic_merge_directives() {
        let mut doc = json!({"metadata": {"labels": {"a": "1", "b": "2"}}});
        strategic_merge_patch(
            &mut doc,
            &json!({"metadata": {"labels": {"$patch": "replace", "c": "3"}}}),
        )
        .unwrap();
        assert_eq!(doc, json!({"metadata": {"labels": {"c": "3"}}}));
        strategic_merge_patch(
            &mut doc,
            &json!({"metadata": {"labels": {"$patch": "delete"}}}),
        )
        .unwrap();
        assert_eq!(doc, json!({"metadata": {}}));
        let mut doc = json!({"metadata": {"finalizers": ["a", "b"]}});
        strategic_merge_patch(
            &mut doc,
            &json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}),
        )
        .unwrap();
        assert_eq!(doc, json!({"metadata": {"finalizers": ["b"]}}));
        let err = strategic_merge_patch(
            &mut json!({}),
            &json!({"spec": {"containers": [{"image": "x"}]}}),
        );
        assert!(err.unwrap_err().contains("merge key"));
    }

    #[test]
    fn json_patch_ops_and_escapes() {
        let mut doc = json!({"metadata": {"annotations": {"x": "1"}}, "list": [1, 2]});
        json_patch(
            &mut doc,
            &json!([
                {"op": "test", "path": "/metadata/annotations/x", "value": "1"},
                {"op": "add", "path": "/metadata/annotations/k8s.v1.cni.cncf.io~1network-status", "value": "[]"},
                {"op": "replace", "path": "/metadata/annotations/x", "value": "2"},
                {"op": "add", "path": "/list/-", "value": 3},
                {"op": "add", "path": "/list/0", "value": 0},
                {"op": "remove", "path": "/list/1"},
                {"op": "copy", "from": "/metadata/annotations/x", "path": "/copied"},
                {"op": "move", "from": "/copied", "path": "/moved~0tilde"},
            ]),
        )
        .unwrap();
        assert_eq!(
            doc,
            json!({"metadata": {"annotations": {"x": "2", "k8s.v1.cni.cncf.io/network-status": "[]"}},
                   "list": [0, 2, 3], "moved~tilde": "2"})
        );
    }

    #[test]
    fn json_patch_failures_are_atomic_and_classified() {
        let original = json!({"a": {"b": 1}});
        let mut doc = original.clone();
        let err = json_patch(
            &mut doc,
            &json!([{"op": "replace", "path": "/a/b", "value": 2}, {"op": "test", "path": "/a/b", "value": 1}]),
        )
        .unwrap_err();
        assert!(matches!(err, JsonPatchError::Apply(_)));
        assert_eq!(doc, original, "a failed patch changes nothing");
        assert!(matches!(
            json_patch(&mut doc, &json!({"op": "add"})),
            Err(JsonPatchError::Decode(_))
        ));
        assert!(matches!(
            json_patch(&mut doc, &json!([{"op": "remove", "path": "/missing"}])),
            Err(JsonPatchError::Apply(_))
        ));
        assert!(matches!(
            json_patch(
                &mut doc,
                &json!([{"op": "replace", "path": "/a/c", "value": 1}])
            ),
            Err(JsonPatchError::Apply(_))
        ));
        assert!(matches!(
            json_patch(&mut doc, &json!([{"op": "add", "path": "a", "value": 1}])),
            Err(JsonPatchError::Decode(_))
        ));
        assert!(matches!(
            json_patch(&mut doc, &json!([{"op": "frobnicate", "path": "/a"}])),
            Err(JsonPatchError::Decode(_))
        ));
    }
}
