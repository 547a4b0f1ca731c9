//! The three PATCH flavours kube-apiserver accepts as JSON: RFC 7386 merge patch, strategic
//! merge patch (merge keys for the pod fields that have them) and RFC 6902 JSON patch.

use serde_json::{Map, Value};

/// RFC 7386 JSON merge patch: objects merge recursively, `null` deletes, anything else replaces.
pub(crate) fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch_map) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(target_map) = target else {
        return;
    };
    for (key, value) in patch_map {
        if value.is_null() {
            target_map.remove(key);
        } else {
            merge_patch(target_map.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
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

/// One RFC 6901 JSON pointer, split into unescaped tokens.
fn parse_pointer(pointer: &str) -> Result<Vec<String>, JsonPatchError> {
    if pointer.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = pointer.strip_prefix('/') else {
        return Err(JsonPatchError::Decode(format!(
            "invalid JSON pointer {pointer:?}: must start with '/'"
        )));
    };
    rest.split('/')
        .map(|token| {
            if token.contains('~') {
                let mut out = String::new();
                let mut chars = token.chars();
                while let Some(c) = chars.next() {
                    if c == '~' {
                        match chars.next() {
                            Some('0') => out.push('~'),
                            Some('1') => out.push('/'),
                            _ => {
                                return Err(JsonPatchError::Decode(format!(
                                    "invalid JSON pointer {pointer:?}: bad escape"
                                )))
                            }
                        }
                    } else {
                        out.push(c);
                    }
                }
                Ok(out)
            } else {
                Ok(token.to_string())
            }
        })
        .collect()
}

fn array_index(
    token: &str,
    len: usize,
    allow_end: bool,
    pointer: &str,
) -> Result<usize, JsonPatchError> {
    if allow_end && token == "-" {
        return Ok(len);
    }
    let valid = !token.is_empty()
        && token.bytes().all(|b| b.is_ascii_digit())
        && (token == "0" || !token.starts_with('0'));
    let index: usize = if valid {
        token.parse().unwrap_or(usize::MAX)
    } else {
        usize::MAX
    };
    let limit = if allow_end {
        len
    } else {
        len.saturating_sub(1)
    };
    if index == usize::MAX || index > limit || (!allow_end && len == 0) {
        return Err(JsonPatchError::Apply(format!(
            "index {token:?} out of bounds in path {pointer:?}"
        )));
    }
    Ok(index)
}

fn get_mut<'a>(
    doc: &'a mut Value,
    tokens: &[String],
    pointer: &str,
) -> Result<&'a mut Value, JsonPatchError> {
    let mut current = doc;
    for token in tokens {
        current = match current {
            Value::Object(map) => map.get_mut(token.as_str()).ok_or_else(|| {
                JsonPatchError::Apply(format!(
                    "path {pointer:?} does not exist: missing {token:?}"
                ))
            })?,
            Value::Array(items) => {
                let i = array_index(token, items.len(), false, pointer)?;
                &mut items[i]
            }
            _ => {
                return Err(JsonPatchError::Apply(format!(
                    "path {pointer:?} does not exist: {token:?} is under a scalar"
                )))
            }
        };
    }
    Ok(current)
}

fn remove_at(doc: &mut Value, pointer: &str) -> Result<Value, JsonPatchError> {
    let tokens = parse_pointer(pointer)?;
    let Some((last, parents)) = tokens.split_last() else {
        return Err(JsonPatchError::Apply(
            "cannot remove the whole document".into(),
        ));
    };
    match get_mut(doc, parents, pointer)? {
        Value::Object(map) => map.remove(last.as_str()).ok_or_else(|| {
            JsonPatchError::Apply(format!(
                "unable to remove nonexistent key: {last} (path {pointer:?})"
            ))
        }),
        Value::Array(items) => {
            let i = array_index(last, items.len(), false, pointer)?;
            Ok(items.remove(i))
        }
        _ => Err(JsonPatchError::Apply(format!(
            "path {pointer:?} does not exist"
        ))),
    }
}

fn add_at(doc: &mut Value, pointer: &str, value: Value) -> Result<(), JsonPatchError> {
    let tokens = parse_pointer(pointer)?;
    let Some((last, parents)) = tokens.split_last() else {
        *doc = value;
        return Ok(());
    };
    match get_mut(doc, parents, pointer)? {
        Value::Object(map) => {
            map.insert(last.clone(), value);
            Ok(())
        }
        Value::Array(items) => {
            let i = array_index(last, items.len(), true, pointer)?;
            items.insert(i, value);
            Ok(())
        }
        _ => Err(JsonPatchError::Apply(format!(
            "path {pointer:?}: parent is not a container"
        ))),
    }
}

fn op_field<'a>(
    op: &'a Map<String, Value>,
    field: &str,
    index: usize,
) -> Result<&'a Value, JsonPatchError> {
    op.get(field).ok_or_else(|| {
        JsonPatchError::Decode(format!("operation {index}: missing field {field:?}"))
    })
}

fn op_str<'a>(
    op: &'a Map<String, Value>,
    field: &str,
    index: usize,
) -> Result<&'a str, JsonPatchError> {
    op_field(op, field, index)?.as_str().ok_or_else(|| {
        JsonPatchError::Decode(format!("operation {index}: {field:?} must be a string"))
    })
}

/// RFC 6902 JSON patch: add, remove, replace, move, copy and test, applied atomically.
pub(crate) fn json_patch(target: &mut Value, patch: &Value) -> Result<(), JsonPatchError> {
    let ops = patch.as_array().ok_or_else(|| {
        JsonPatchError::Decode("a JSON patch must be a list of operations".into())
    })?;
    let mut doc = target.clone();
    for (index, op) in ops.iter().enumerate() {
        let op = op
            .as_object()
            .ok_or_else(|| JsonPatchError::Decode(format!("operation {index} is not an object")))?;
        let path = op_str(op, "path", index)?;
        match op_str(op, "op", index)? {
            "add" => add_at(&mut doc, path, op_field(op, "value", index)?.clone())?,
            "remove" => {
                remove_at(&mut doc, path)?;
            }
            "replace" => {
                let value = op_field(op, "value", index)?.clone();
                let tokens = parse_pointer(path)?;
                *get_mut(&mut doc, &tokens, path)? = value;
            }
            "move" => {
                let from = op_str(op, "from", index)?;
                if path.starts_with(&format!("{from}/")) {
                    return Err(JsonPatchError::Apply(format!(
                        "cannot move {from:?} into its child {path:?}"
                    )));
                }
                let value = remove_at(&mut doc, from)?;
                add_at(&mut doc, path, value)?;
            }
            "copy" => {
                let from = op_str(op, "from", index)?;
                let tokens = parse_pointer(from)?;
                let value = get_mut(&mut doc, &tokens, from)?.clone();
                add_at(&mut doc, path, value)?;
            }
            "test" => {
                let expected = op_field(op, "value", index)?;
                let tokens = parse_pointer(path)?;
                let actual = get_mut(&mut doc, &tokens, path)?;
                if actual != expected {
                    return Err(JsonPatchError::Apply(format!(
                        "testing value {path} failed: expected {expected}, found {actual}"
                    )));
                }
            }
            other => {
                return Err(JsonPatchError::Decode(format!(
                    "operation {index}: unknown op {other:?}"
                )))
            }
        }
    }
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
