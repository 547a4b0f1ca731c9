//! The kubelet's PodResources API v1 client (`v1.PodResourcesLister`, gRPC over HTTP/2 on the
//! unix socket `/var/lib/kubelet/pod-resources/kubelet.sock`): `Get` for the one pod, and `List`
//! when `Get` is refused (kubelets before 1.27, or with the `KubeletPodResourcesGet` gate off).
//!
//! No gRPC framework: one unary call is one HTTP/2 request over hyper's client, with the gRPC
//! framing, headers and status handled here, and the messages ([`super::proto`]) encoded and
//! decoded by `prost`.

use std::{io, path::Path, time::Duration};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{header, Request, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use prost::Message;

use super::{proto, PodDevices, PodIdentity, Source};

/// Where the kubelet serves the PodResources API.
pub const DEFAULT_SOCKET: &str = "/var/lib/kubelet/pod-resources/kubelet.sock";
/// Largest gRPC response accepted (the reference's limit: 16 MiB).
pub const MAX_RESPONSE: usize = 16 * 1024 * 1024;

const SERVICE: &str = "v1.PodResourcesLister";

/// Why the kubelet API gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum KubeletError {
    /// Nothing at the socket path (no kubelet, or not a Kubernetes node).
    #[error("the socket does not exist")]
    SocketMissing,
    /// The socket exists but the connection failed (a stale socket, permissions).
    #[error("cannot connect: {0}")]
    Connect(#[source] io::Error),
    /// HTTP/2 failed (handshake, stream reset, connection closed).
    #[error("HTTP/2: {0}")]
    Http(#[source] hyper::Error),
    /// No complete answer within the deadline.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The kubelet answered with a gRPC error status.
    #[error("{method} failed with gRPC status {code} ({}): {message}", status_name(*.code))]
    Status {
        /// The method (`Get`, `List`).
        method: &'static str,
        /// The gRPC status code.
        code: u32,
        /// The `grpc-message`, percent-decoded.
        message: String,
    },
    /// The answer broke the gRPC or protobuf rules.
    #[error("malformed answer to {method}: {reason}")]
    Protocol {
        /// The method (`Get`, `List`).
        method: &'static str,
        /// What was wrong.
        reason: String,
    },
}

/// One kubelet exchange: `Get`, then `List` when `Get` is refused with a gRPC status. The
/// caller bounds it with its deadline ([`super::DeviceSource::kubelet`]).
pub async fn query(
    socket: &Path,
    pod: &PodIdentity,
    timeout: Duration,
) -> Result<PodDevices, KubeletError> {
    let stream = tokio::net::UnixStream::connect(socket)
        .await
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => KubeletError::SocketMissing,
            _ => KubeletError::Connect(e),
        })?;
    let (mut sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .max_frame_size(1 << 20)
        .handshake::<_, Full<Bytes>>(TokioIo::new(stream))
        .await
        .map_err(KubeletError::Http)?;
    // Ends with the runtime or when `sender` is dropped.
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!("kubelet PodResources connection: {e}");
        }
    });

    let get = proto::GetPodResourcesRequest {
        pod_name: pod.name.clone(),
        pod_namespace: pod.namespace.clone(),
    };
    match unary::<proto::GetPodResourcesResponse>(&mut sender, "Get", &get, timeout).await {
        Ok(resp) => {
            let mut devices = PodDevices::new(Source::Kubelet);
            if let Some(p) = resp.pod_resources {
                collect(&mut devices, &p);
            }
            return Ok(devices);
        }
        // Older kubelets (Unimplemented) and disabled or failing Get (Unknown): ask List.
        Err(KubeletError::Status { code, message, .. }) => {
            tracing::debug!("kubelet PodResources Get refused ({code}: {message}); using List");
        }
        Err(e) => return Err(e),
    }
    let list = proto::ListPodResourcesRequest {};
    let resp: proto::ListPodResourcesResponse = unary(&mut sender, "List", &list, timeout).await?;
    let mut devices = PodDevices::new(Source::Kubelet);
    for p in resp
        .pod_resources
        .iter()
        .filter(|p| p.name == pod.name && p.namespace == pod.namespace)
    {
        collect(&mut devices, p);
    }
    Ok(devices)
}

/// Adds the devices of every container of `pod` to `devices`.
pub fn collect(devices: &mut PodDevices, pod: &proto::PodResources) {
    for container in &pod.containers {
        for d in &container.devices {
            devices.add(&d.resource_name, d.device_ids.iter().cloned());
        }
    }
}

/// One unary gRPC call: sends `message`, returns the one response message, decoded.
async fn unary<Response: Message + Default>(
    sender: &mut hyper::client::conn::http2::SendRequest<Full<Bytes>>,
    method: &'static str,
    message: &impl Message,
    timeout: Duration,
) -> Result<Response, KubeletError> {
    let protocol = |reason: String| KubeletError::Protocol { method, reason };
    let request = Request::post(format!("http://localhost/{SERVICE}/{method}"))
        .header(header::CONTENT_TYPE, "application/grpc")
        .header(header::TE, "trailers")
        .header(
            header::USER_AGENT,
            concat!("multus-rs/", env!("CARGO_PKG_VERSION")),
        )
        .header("grpc-timeout", grpc_timeout(timeout))
        .body(Full::new(Bytes::from(frame(&message.encode_to_vec()))))
        .map_err(|e| protocol(format!("cannot build the request: {e}")))?;
    sender.ready().await.map_err(KubeletError::Http)?;
    let response = sender
        .send_request(request)
        .await
        .map_err(KubeletError::Http)?;
    let (parts, body) = response.into_parts();
    if parts.status != StatusCode::OK {
        return Err(KubeletError::Status {
            method,
            code: http_to_grpc(parts.status),
            message: format!("HTTP status {}", parts.status),
        });
    }
    // A trailers-only answer carries the status in the headers.
    if let Some(status) = grpc_status(&parts.headers, method)? {
        if status.0 != 0 {
            return Err(KubeletError::Status {
                method,
                code: status.0,
                message: status.1,
            });
        }
    }
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with("application/grpc") {
        return Err(protocol(format!(
            "content-type {content_type:?} is not application/grpc"
        )));
    }
    let collected = Limited::new(body, MAX_RESPONSE + 5)
        .collect()
        .await
        .map_err(|e| match e.downcast::<hyper::Error>() {
            Ok(e) => KubeletError::Http(*e),
            Err(e) => protocol(format!("{e} (limit {MAX_RESPONSE} bytes)")),
        })?;
    let trailers = collected.trailers().cloned();
    let data = collected.to_bytes();
    let status = match trailers.as_ref() {
        Some(t) => grpc_status(t, method)?,
        None => None,
    };
    match status {
        Some((0, _)) => {}
        Some((code, message)) => {
            return Err(KubeletError::Status {
                method,
                code,
                message,
            })
        }
        None => return Err(protocol("no grpc-status in the trailers".into())),
    }
    let message = unframe(&data).map_err(protocol)?;
    Response::decode(message).map_err(|e| protocol(e.to_string()))
}

/// The gRPC length-prefixed message: flag 0 (not compressed), 4-byte big-endian length, bytes.
pub fn frame(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 5);
    out.push(0);
    // messages here are far below 4 GiB; saturate rather than wrap if not
    out.extend_from_slice(
        &u32::try_from(message.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    out.extend_from_slice(message);
    out
}

/// Splits a unary response body into its one message.
pub fn unframe(data: &[u8]) -> Result<Bytes, String> {
    if data.len() < 5 {
        return Err(format!(
            "{} bytes of body, less than one gRPC message header",
            data.len()
        ));
    }
    if data[0] != 0 {
        return Err(format!(
            "compressed or unknown message flag {} (no compression was offered)",
            data[0]
        ));
    }
    let len = u32::from_be_bytes([data[1], data[2], data[3], data[4]]) as usize;
    let rest = &data[5..];
    if rest.len() != len {
        return Err(format!(
            "message length {len} but {} bytes follow (a unary answer has one message)",
            rest.len()
        ));
    }
    Ok(Bytes::copy_from_slice(rest))
}

fn grpc_timeout(timeout: Duration) -> String {
    let ms = timeout.as_millis().max(1);
    if ms <= 99_999_999 {
        format!("{ms}m")
    } else {
        format!("{}S", timeout.as_secs().min(99_999_999))
    }
}

fn grpc_status(
    headers: &hyper::HeaderMap,
    method: &'static str,
) -> Result<Option<(u32, String)>, KubeletError> {
    let Some(code) = headers.get("grpc-status") else {
        return Ok(None);
    };
    let code = code
        .to_str()
        .ok()
        .and_then(|c| c.parse::<u32>().ok())
        .ok_or_else(|| KubeletError::Protocol {
            method,
            reason: format!("grpc-status {code:?} is not a number"),
        })?;
    let message = headers
        .get("grpc-message")
        .map(|m| percent_decode(m.as_bytes()))
        .unwrap_or_default();
    Ok(Some((code, message)))
}

/// Decodes a `grpc-message` trailer (percent-encoded; invalid escapes are kept as they are).
pub fn percent_decode(raw: &[u8]) -> String {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if raw[i] == b'%' && i + 2 < raw.len() {
            if let (Some(h), Some(l)) = (hex(raw[i + 1]), hex(raw[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(raw[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The gRPC code for a non-200 HTTP status (gRPC's "HTTP to gRPC status code mapping").
fn http_to_grpc(status: StatusCode) -> u32 {
    match status.as_u16() {
        400 => 13,
        401 => 16,
        403 => 7,
        404 => 12,
        429 | 502 | 503 | 504 => 14,
        _ => 2,
    }
}

/// The name of a gRPC status code.
pub fn status_name(code: u32) -> &'static str {
    const NAMES: [&str; 17] = [
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ];
    NAMES.get(code as usize).copied().unwrap_or("unknown code")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_framing() {
        assert_eq!(frame(b"ab"), [0, 0, 0, 0, 2, b'a', b'b']);
        assert_eq!(frame(b""), [0, 0, 0, 0, 0]);
        assert_eq!(unframe(&frame(b"ab")).unwrap().as_ref(), b"ab");
        assert_eq!(unframe(&frame(b"")).unwrap().as_ref(), b"");
        assert!(unframe(&[0, 0, 0]).unwrap_err().contains("less than"));
        assert!(unframe(&[1, 0, 0, 0, 0])
            .unwrap_err()
            .contains("compressed"));
        assert!(unframe(&[0, 0, 0, 0, 3, b'a'])
            .unwrap_err()
            .contains("length 3"));
        let mut two = frame(b"a");
        two.extend(frame(b"b"));
        assert!(unframe(&two).is_err());
    }

    #[test]
    fn grpc_headers() {
        assert_eq!(grpc_timeout(Duration::from_secs(10)), "10000m");
        assert_eq!(grpc_timeout(Duration::from_micros(10)), "1m");
        assert_eq!(grpc_timeout(Duration::from_secs(200_000)), "200000S");
        assert_eq!(
            percent_decode(b"pod %22web%22 not found%"),
            "pod \"web\" not found%"
        );
        assert_eq!(percent_decode(b"100%zz"), "100%zz");
        assert_eq!(status_name(12), "UNIMPLEMENTED");
        assert_eq!(status_name(99), "unknown code");
        assert_eq!(http_to_grpc(StatusCode::NOT_FOUND), 12);
        assert_eq!(http_to_grpc(StatusCode::SERVICE_UNAVAILABLE), 14);
    }
}
