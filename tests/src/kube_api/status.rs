//! Kubernetes `Status` errors: the body, reason and HTTP code a real kube-apiserver answers with.

use serde_json::{json, Map, Value};

use super::resources::ResourceType;

/// An error answered as a `Status` object (kind Status, apiVersion v1, status Failure).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ApiError {
    /// HTTP status code, repeated in the body's `code`.
    pub(crate) code: u16,
    /// Machine-readable reason (NotFound, Conflict, ...).
    pub(crate) reason: &'static str,
    /// Human-readable message.
    pub(crate) message: String,
    /// The `details` object, if any.
    pub(crate) details: Option<Box<Value>>,
    /// Seconds for a `Retry-After` header (and details.retryAfterSeconds).
    pub(crate) retry_after: Option<u64>,
}

/// The reason a real API server gives for an HTTP code (k8s.io/apimachinery `StatusReason*`).
pub(crate) fn reason_for_code(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        406 => "NotAcceptable",
        409 => "Conflict",
        410 => "Expired",
        413 => "RequestEntityTooLarge",
        415 => "UnsupportedMediaType",
        422 => "Invalid",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "",
    }
}

fn details(rt: &ResourceType, name: &str) -> Value {
    let mut d = Map::new();
    d.insert("name".into(), Value::String(name.to_string()));
    if !rt.group.is_empty() {
        d.insert("group".into(), Value::String(rt.group.to_string()));
    }
    d.insert("kind".into(), Value::String(rt.plural.to_string()));
    Value::Object(d)
}

impl ApiError {
    /// An error with the code's standard reason.
    pub(crate) fn new(code: u16, message: impl Into<String>) -> Self {
        Self {
            code,
            reason: reason_for_code(code),
            message: message.into(),
            details: None,
            retry_after: None,
        }
    }

    /// 400 BadRequest.
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, message)
    }

    /// 401 Unauthorized, exactly as kube-apiserver words it.
    pub(crate) fn unauthorized() -> Self {
        Self::new(401, "Unauthorized")
    }

    /// 404 for a path that names no resource.
    pub(crate) fn path_not_found() -> Self {
        let mut e = Self::new(404, "the server could not find the requested resource");
        e.details = Some(Box::new(json!({})));
        e
    }

    /// 404 `pods "x" not found`.
    pub(crate) fn not_found(rt: &ResourceType, name: &str) -> Self {
        let mut e = Self::new(404, format!("{} \"{name}\" not found", rt.qualified()));
        e.details = Some(Box::new(details(rt, name)));
        e
    }

    /// 409 AlreadyExists.
    pub(crate) fn already_exists(rt: &ResourceType, name: &str) -> Self {
        let mut e = Self::new(409, format!("{} \"{name}\" already exists", rt.qualified()));
        e.reason = "AlreadyExists";
        e.details = Some(Box::new(details(rt, name)));
        e
    }

    /// 409 Conflict for a stale resourceVersion (optimistic concurrency).
    pub(crate) fn conflict(rt: &ResourceType, name: &str) -> Self {
        Self::conflict_with(
            rt,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 409 Conflict with a specific cause (for example a failed UID precondition).
    pub(crate) fn conflict_with(rt: &ResourceType, name: &str, cause: &str) -> Self {
        let mut e = Self::new(
            409,
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": {cause}",
                rt.qualified()
            ),
        );
        e.details = Some(Box::new(details(rt, name)));
        e
    }

    /// 422 Invalid: `Pod "x" is invalid: field: detail`.
    pub(crate) fn invalid(rt: &ResourceType, name: &str, field: &str, detail: &str) -> Self {
        let kind = if rt.group.is_empty() {
            rt.kind.to_string()
        } else {
            format!("{}.{}", rt.kind, rt.group)
        };
        let mut e = Self::new(
            422,
            format!("{kind} \"{name}\" is invalid: {field}: {detail}"),
        );
        let mut d = details(rt, name);
        if let Some(obj) = d.as_object_mut() {
            obj.insert("kind".into(), Value::String(rt.kind.to_string()));
            obj.insert(
                "causes".into(),
                json!([{ "reason": "FieldValueInvalid", "message": detail, "field": field }]),
            );
        }
        e.details = Some(Box::new(d));
        e
    }

    /// 405 MethodNotAllowed.
    pub(crate) fn method_not_allowed() -> Self {
        Self::new(
            405,
            "the server does not allow this method on the requested resource",
        )
    }

    /// 415 UnsupportedMediaType for a PATCH content type the resource does not accept.
    pub(crate) fn unsupported_patch(accepted: &[&str]) -> Self {
        Self::new(
            415,
            format!(
                "the body of the request was in an unknown format - accepted media types include: {}",
                accepted.join(", ")
            ),
        )
    }

    /// 500 InternalError.
    pub(crate) fn internal(message: impl std::fmt::Display) -> Self {
        Self::new(500, format!("Internal error occurred: {message}"))
    }

    /// 429 TooManyRequests with a Retry-After.
    pub(crate) fn too_many_requests(retry_after_secs: u64) -> Self {
        let mut e = Self::new(429, "Too many requests, please try again later.");
        e.details = Some(Box::new(json!({ "retryAfterSeconds": retry_after_secs })));
        e.retry_after = Some(retry_after_secs);
        e
    }

    /// An injected error for `code`, worded like the real one when the target is known.
    pub(crate) fn injected(code: u16, target: Option<(&ResourceType, &str)>) -> Self {
        match (code, target) {
            (404, Some((rt, name))) if !name.is_empty() => Self::not_found(rt, name),
            (409, Some((rt, name))) if !name.is_empty() => Self::conflict(rt, name),
            (404, _) => Self::path_not_found(),
            (429, _) => Self::too_many_requests(1),
            (500, _) => Self::internal("injected fault"),
            (503, _) => Self::new(503, "the server is currently unable to handle the request"),
            (504, _) => Self::new(
                504,
                "the server was unable to return a response in the time allotted",
            ),
            (code, _) => Self::new(code, format!("injected fault: HTTP {code}")),
        }
    }

    /// The `Status` object sent as the response body.
    pub(crate) fn to_status(&self) -> Value {
        let mut s = Map::new();
        s.insert("kind".into(), json!("Status"));
        s.insert("apiVersion".into(), json!("v1"));
        s.insert("metadata".into(), json!({}));
        s.insert("status".into(), json!("Failure"));
        s.insert("message".into(), json!(self.message));
        if !self.reason.is_empty() {
            s.insert("reason".into(), json!(self.reason));
        }
        if let Some(d) = &self.details {
            s.insert("details".into(), (**d).clone());
        }
        s.insert("code".into(), json!(self.code));
        Value::Object(s)
    }
}
