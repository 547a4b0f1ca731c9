//! Label selectors (`labelSelector=`) and field selectors (`fieldSelector=`) for LIST.

use serde_json::Value;

use super::resources::ResourceType;

#[derive(Debug, PartialEq)]
enum LabelOp {
    Eq(String),
    NotEq(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    DoesNotExist,
}

/// A parsed label selector: every requirement must hold.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct LabelSelector(Vec<(String, LabelOp)>);

/// Splits on commas outside parentheses.
fn split_terms(s: &str) -> Vec<&str> {
    let mut terms = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                terms.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(&s[start..]);
    terms
        .into_iter()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect()
}

fn valid_label_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
}

fn parse_set(rest: &str, term: &str) -> Result<Vec<String>, String> {
    let inner = rest
        .trim()
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| {
            format!("unable to parse requirement: {term:?}: expected a (value,...) set")
        })?;
    Ok(inner
        .split(',')
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect())
}

impl LabelSelector {
    /// Parses `a=b,c!=d,e in (f,g),h notin (i),j,!k`.
    pub(crate) fn parse(s: &str) -> Result<Self, String> {
        let mut reqs = Vec::new();
        for term in split_terms(s) {
            let (key, op) = if let Some(key) = term.strip_prefix('!') {
                (key.trim(), LabelOp::DoesNotExist)
            } else if let Some((k, v)) = term.split_once("!=") {
                (k.trim(), LabelOp::NotEq(v.trim().to_string()))
            } else if let Some((k, v)) = term.split_once("==") {
                (k.trim(), LabelOp::Eq(v.trim().to_string()))
            } else if let Some((k, v)) = term.split_once('=') {
                (k.trim(), LabelOp::Eq(v.trim().to_string()))
            } else if let Some((k, rest)) = term.split_once(" notin ") {
                (k.trim(), LabelOp::NotIn(parse_set(rest, term)?))
            } else if let Some((k, rest)) = term.split_once(" in ") {
                (k.trim(), LabelOp::In(parse_set(rest, term)?))
            } else {
                (term, LabelOp::Exists)
            };
            if !valid_label_key(key) {
                return Err(format!(
                    "unable to parse requirement: invalid label key {key:?}"
                ));
            }
            reqs.push((key.to_string(), op));
        }
        Ok(Self(reqs))
    }

    /// Whether an object's `metadata.labels` satisfy the selector.
    pub(crate) fn matches(&self, obj: &Value) -> bool {
        let labels = obj.pointer("/metadata/labels");
        self.0.iter().all(|(key, op)| {
            let value = labels.and_then(|l| l.get(key)).and_then(Value::as_str);
            match op {
                LabelOp::Eq(v) => value == Some(v.as_str()),
                LabelOp::NotEq(v) => value != Some(v.as_str()),
                LabelOp::In(set) => value.is_some_and(|x| set.iter().any(|s| s == x)),
                LabelOp::NotIn(set) => value.is_none_or(|x| !set.iter().any(|s| s == x)),
                LabelOp::Exists => value.is_some(),
                LabelOp::DoesNotExist => value.is_none(),
            }
        })
    }
}

/// A parsed field selector: `field=value`, `field==value` or `field!=value` terms.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    /// Parses and checks each field against what the resource type supports, as the API server
    /// does (`field label not supported: x` otherwise).
    pub(crate) fn parse(s: &str, rt: &ResourceType) -> Result<Self, String> {
        let mut terms = Vec::new();
        for term in split_terms(s) {
            let (field, equal, value) = if let Some((f, v)) = term.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = term.split_once("==") {
                (f, true, v)
            } else if let Some((f, v)) = term.split_once('=') {
                (f, true, v)
            } else {
                return Err(format!(
                    "invalid selector: '{term}'; can't understand '{term}'"
                ));
            };
            let field = field.trim();
            let supported = matches!(field, "metadata.name" | "metadata.namespace")
                || rt.field_labels.contains(&field);
            if !supported {
                return Err(format!("field label not supported: {field}"));
            }
            terms.push((field.to_string(), equal, value.trim().to_string()));
        }
        Ok(Self(terms))
    }

    /// Whether the object's fields satisfy every term. Absent fields compare as "" (and
    /// spec.hostNetwork as "false"), like the API server's field sets.
    pub(crate) fn matches(&self, obj: &Value) -> bool {
        self.0.iter().all(|(field, equal, expected)| {
            let pointer = format!("/{}", field.replace('.', "/"));
            let actual = match obj.pointer(&pointer) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Bool(b)) => b.to_string(),
                Some(Value::Number(n)) => n.to_string(),
                Some(Value::Object(map)) if field == "source" => map
                    .get("component")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                _ if field == "spec.hostNetwork" => "false".to_string(),
                _ => String::new(),
            };
            (actual == *expected) == *equal
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube_api::resources::{NADS, PODS};
    use serde_json::json;

    #[test]
    fn label_selectors() {
        let obj = json!({"metadata": {"labels": {"app": "web", "tier": "front"}}});
        let yes = [
            "app=web",
            "app==web",
            "app",
            "!missing",
            "app in (web, db)",
            "tier notin (back)",
            "app=web,tier!=back",
            "",
        ];
        for s in yes {
            assert!(
                LabelSelector::parse(s).unwrap().matches(&obj),
                "{s} should match"
            );
        }
        let no = [
            "app=db",
            "app!=web",
            "missing",
            "!app",
            "app in (db)",
            "tier notin (front)",
            "missing=x",
        ];
        for s in no {
            assert!(
                !LabelSelector::parse(s).unwrap().matches(&obj),
                "{s} should not match"
            );
        }
        assert!(LabelSelector::parse("app in web").is_err());
        assert!(LabelSelector::parse("bad key=1").is_err());
    }

    #[test]
    fn field_selectors() {
        let pod = json!({"metadata": {"name": "p", "namespace": "ns"}, "spec": {"nodeName": "n1"},
                         "status": {"phase": "Running"}});
        for s in [
            "metadata.name=p",
            "spec.nodeName=n1,status.phase!=Pending",
            "spec.hostNetwork=false",
            "status.podIP=",
        ] {
            assert!(FieldSelector::parse(s, &PODS).unwrap().matches(&pod), "{s}");
        }
        assert!(!FieldSelector::parse("spec.nodeName=n2", &PODS)
            .unwrap()
            .matches(&pod));
        assert_eq!(
            FieldSelector::parse("spec.nodeName=n1", &NADS).unwrap_err(),
            "field label not supported: spec.nodeName"
        );
        assert!(FieldSelector::parse("metadata.name", &PODS).is_err());
    }
}
