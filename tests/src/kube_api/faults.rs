//! Fault injection and request accounting.

use std::time::Duration;

/// What an injected fault does to a matching request.
#[derive(Debug, Clone, PartialEq)]
pub enum FaultAction {
    /// Answer with a `Status` error carrying this HTTP code (404, 409, 500, 503, ...); the
    /// reason is the one kube-apiserver uses for the code, and for 404/409 on an object path
    /// the message names the object like a real one.
    Status(u16),
    /// 429 TooManyRequests with a `Retry-After` header of this many seconds.
    TooManyRequests {
        /// Value of the Retry-After header (and of details.retryAfterSeconds).
        retry_after_secs: u64,
    },
    /// Wait this long, then go on (to later faults and to normal handling).
    Delay(Duration),
    /// Close the connection without answering (the client sees a reset/closed connection).
    DropConnection,
    /// Answer as usual, but send only the headers (whose Content-Length announces the whole
    /// body) and the first half of the body, then close the connection: a reset mid-body.
    TruncateBody,
    /// Answer a watch (`?watch=true`) with its headers and then nothing, never ending it while
    /// the server runs: a stalled watch. A request that is not a watch is handled as usual.
    StallWatch,
    /// Delete the object the request addresses (as if it went away meanwhile), then go on:
    /// the request itself then meets a genuine 404.
    DeleteTarget,
    /// Write the object the request addresses (as another client would), bumping its
    /// resourceVersion, then go on: a write carrying the old resourceVersion meets a genuine 409.
    BumpResourceVersion,
}

/// A fault: an action, which requests it applies to, and how many times.
///
/// ```no_run
/// # use testkit::kube_api::{Fault, KubeApiServer};
/// # let server = KubeApiServer::start().unwrap();
/// // The next two GETs of any pod fail with 500, then requests succeed again.
/// server.inject(Fault::status(500).method("GET").path("/api/v1/namespaces/*/pods/*").times(2));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    pub(crate) action: FaultAction,
    pub(crate) method: Option<String>,
    pub(crate) path: Option<String>,
    /// Remaining matches; `None` means always.
    pub(crate) remaining: Option<u64>,
}

impl Fault {
    /// A fault answering with HTTP `code` as a `Status` object. Applies always until
    /// [`times`](Self::times) limits it.
    pub fn status(code: u16) -> Self {
        Self::new(FaultAction::Status(code))
    }

    /// A 429 TooManyRequests with `Retry-After: retry_after_secs`.
    pub fn too_many_requests(retry_after_secs: u64) -> Self {
        Self::new(FaultAction::TooManyRequests { retry_after_secs })
    }

    /// Added latency before the request is handled.
    pub fn delay(latency: Duration) -> Self {
        Self::new(FaultAction::Delay(latency))
    }

    /// Drop the connection without a response.
    pub fn drop_connection() -> Self {
        Self::new(FaultAction::DropConnection)
    }

    /// Send the headers and half of the body, then close the connection.
    pub fn truncate_body() -> Self {
        Self::new(FaultAction::TruncateBody)
    }

    /// Stall watches: headers, then silence.
    pub fn stall_watch() -> Self {
        Self::new(FaultAction::StallWatch)
    }

    /// Delete the addressed object just before handling the request.
    pub fn delete_target() -> Self {
        Self::new(FaultAction::DeleteTarget)
    }

    /// Bump the addressed object's resourceVersion just before handling the request.
    pub fn bump_resource_version() -> Self {
        Self::new(FaultAction::BumpResourceVersion)
    }

    /// A fault with any action.
    pub fn new(action: FaultAction) -> Self {
        Self {
            action,
            method: None,
            path: None,
            remaining: None,
        }
    }

    /// Only requests with this HTTP method (case-insensitive: "GET", "PATCH", ...).
    pub fn method(mut self, method: &str) -> Self {
        self.method = Some(method.to_ascii_uppercase());
        self
    }

    /// Only requests whose path (without query) matches this glob: `*` matches within one
    /// segment, `**` across segments; no wildcard means an exact path.
    pub fn path(mut self, pattern: &str) -> Self {
        self.path = Some(pattern.to_string());
        self
    }

    /// Only the next `n` matching requests.
    pub fn times(mut self, n: u64) -> Self {
        self.remaining = Some(n);
        self
    }

    /// Every matching request until removed (the default).
    pub fn always(mut self) -> Self {
        self.remaining = None;
        self
    }

    pub(crate) fn matches(&self, method: &str, path: &str) -> bool {
        self.remaining != Some(0)
            && self.method.as_deref().is_none_or(|m| m == method)
            && self.path.as_deref().is_none_or(|p| glob_match(p, path))
    }
}

/// Identifies an injected fault, to remove it or read its hit count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FaultId(pub(crate) u64);

/// An injected fault and how often it fired.
#[derive(Debug)]
pub(crate) struct ActiveFault {
    pub(crate) id: FaultId,
    pub(crate) fault: Fault,
    pub(crate) hits: u64,
}

/// One request as the server received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// HTTP method, upper case.
    pub method: String,
    /// Path without the query.
    pub path: String,
    /// Raw query string (empty if none).
    pub query: String,
    /// HTTP status answered; 0 if the connection was dropped or the answer is not sent yet.
    pub status: u16,
    /// The protocol it came in: `HTTP/1.1` or `HTTP/2.0`.
    pub version: String,
    /// The connection it came on (numbered from 1 in the order they were accepted).
    pub connection: u64,
}

/// `*` matches any run of characters except '/', `**` any run; everything else is literal.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    fn go(p: &[u8], t: &[u8]) -> bool {
        match p.first() {
            None => t.is_empty(),
            Some(b'*') if p.get(1) == Some(&b'*') => {
                let rest = &p[2..];
                (0..=t.len()).any(|i| go(rest, &t[i..]))
            }
            Some(b'*') => {
                let rest = &p[1..];
                let limit = t.iter().position(|&c| c == b'/').unwrap_or(t.len());
                (0..=limit).any(|i| go(rest, &t[i..]))
            }
            Some(&c) => t.first() == Some(&c) && go(&p[1..], &t[1..]),
        }
    }
    go(pattern.as_bytes(), text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match(
            "/api/v1/namespaces/*/pods/*",
            "/api/v1/namespaces/ns/pods/p"
        ));
        assert!(!glob_match(
            "/api/v1/namespaces/*/pods/*",
            "/api/v1/namespaces/ns/pods/p/status"
        ));
        assert!(glob_match("/api/**", "/api/v1/namespaces/ns/pods/p/status"));
        assert!(glob_match("**/pods/*", "/api/v1/namespaces/ns/pods/p"));
        assert!(glob_match("/version", "/version"));
        assert!(!glob_match("/version", "/version/x"));
        assert!(glob_match("/apis/*", "/apis/"));
    }

    #[test]
    fn fault_matching_and_counts() {
        let f = Fault::status(500).method("get").path("/api/**").times(1);
        assert!(f.matches("GET", "/api/v1"));
        assert!(!f.matches("PATCH", "/api/v1"));
        assert!(!f.matches("GET", "/apis/x"));
        assert!(!Fault::status(500).times(0).matches("GET", "/"));
    }
}
