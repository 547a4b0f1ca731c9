//! `?watch=true` on a collection: Kubernetes watch semantics over the store's journal. One JSON
//! event per line (`{"type":"ADDED|MODIFIED|DELETED|ERROR","object":…}`). Without a
//! resourceVersion (or with `0`) the current objects come first as ADDED; from resourceVersion N
//! every write after N follows; a N older than the kept history gets one ERROR event carrying a
//! 410 Expired Status, and the stream ends (the client relists). `timeoutSeconds` ends the stream;
//! an outage closes it with its connection.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use hyper::{
    body::Frame,
    header::{HeaderValue, CONTENT_TYPE},
    Response,
};
use serde_json::{json, Value};

use super::{
    http::{Body, Query},
    resources::ResourceType,
    selectors::{FieldSelector, LabelSelector},
    status::ApiError,
    store::WatchEvent,
    Shared,
};

/// Default and upper bound of a watch's life (kube-apiserver's default is 30 to 60 minutes).
const MAX_WATCH: Duration = Duration::from_secs(1800);

fn expired(from: u64, now: u64) -> Value {
    json!({"type": "ERROR", "object": {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": format!("too old resource version: {from} ({now})"),
        "reason": "Expired", "code": 410,
    }})
}

fn line(v: &Value) -> Bytes {
    let mut b = serde_json::to_vec(v).unwrap_or_default();
    b.push(b'\n');
    Bytes::from(b)
}

/// Starts a watch of `rt` (in `ns`, or all namespaces) for the objects the selectors match.
pub(crate) fn start(
    shared: &Shared,
    rt: &'static ResourceType,
    ns: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
    query: &Query,
) -> Result<Response<Body>, ApiError> {
    let timeout = match query.get("timeoutSeconds") {
        None | Some("") => MAX_WATCH,
        Some(t) => Duration::from_secs(
            t.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid timeoutSeconds {t:?}")))?,
        )
        .min(MAX_WATCH),
    };
    let matches = move |resource, namespace: &str, obj: &Value| {
        resource == rt.resource
            && ns.as_deref().is_none_or(|n| n == namespace)
            && labels.matches(obj)
            && fields.matches(obj)
    };
    let (initial, from, changed) = {
        let store = shared.store();
        let (initial, from) = match query.get("resourceVersion") {
            None | Some("") | Some("0") => {
                let initial: Vec<Value> = store
                    .list(rt, None)
                    .filter(|o| {
                        let n = o
                            .pointer("/metadata/namespace")
                            .and_then(Value::as_str)
                            .unwrap_or("");
                        matches(rt.resource, n, o)
                    })
                    .map(|o| json!({"type": "ADDED", "object": o}))
                    .collect();
                (initial, store.revision())
            }
            Some(rv) => {
                let from: u64 = rv.parse().map_err(|_| {
                    ApiError::bad_request(format!("invalid resourceVersion {rv:?}"))
                })?;
                (Vec::new(), from)
            }
        };
        (initial, from, store.changed())
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(256);
    let store_of = shared.store_handle();
    tokio::spawn(async move {
        let deadline = tokio::time::Instant::now() + timeout;
        for event in &initial {
            if tx.send(line(event)).await.is_err() {
                return;
            }
        }
        let mut from = from;
        loop {
            let notified = changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let (events, now): (Option<Vec<WatchEvent>>, u64) = {
                let store = store_of.store();
                (store.events_after(from), store.revision())
            };
            let Some(events) = events else {
                let _ = tx.send(line(&expired(from, now))).await;
                return;
            };
            for e in events {
                from = e.revision;
                if matches(e.resource, &e.namespace, &e.object)
                    && tx
                        .send(line(&json!({"type": e.kind, "object": e.object})))
                        .await
                        .is_err()
                {
                    return;
                }
            }
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep_until(deadline) => return,
                _ = tx.closed() => return,
            }
        }
    });
    let stream = futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
        .map(|b| Ok::<_, std::convert::Infallible>(Frame::data(b)))
        .boxed();
    let mut resp = Response::new(Body::Right(http_body_util::StreamBody::new(stream)));
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(resp)
}
