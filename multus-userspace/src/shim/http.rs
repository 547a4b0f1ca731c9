//! A blocking HTTP/1.1 client for one request over a unix socket, std only (the shim starts no
//! async runtime): `Connection: close`, the body framed by `Content-Length`, chunked encoding or
//! the end of the connection, as Go's server may use any of them.

use std::{
    io::{BufRead, BufReader, Write},
    os::unix::net::UnixStream,
    path::Path,
    time::Duration,
};

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The socket could not be connected: nobody listens (the daemon is down).
    #[error("cannot connect to {socket}: {source}")]
    Connect {
        /// The socket.
        socket: String,
        /// Why.
        source: std::io::Error,
    },
    /// Connected, but no complete answer came back (the daemon stopped or died mid-call).
    #[error("no answer from {socket}: {reason}")]
    NoAnswer {
        /// The socket.
        socket: String,
        /// Why.
        reason: String,
    },
}

impl HttpError {
    /// Whether the daemon never saw the request (nothing listens on the socket).
    pub fn is_connect(&self) -> bool {
        matches!(self, HttpError::Connect { .. })
    }
}

/// An answer.
#[derive(Debug)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// The body.
    pub body: Vec<u8>,
}

/// Sends one request and reads the whole answer. `timeout` bounds each read and write (`None`:
/// wait as long as the daemon works on the call).
pub fn request(
    socket: &Path,
    method: &str,
    path: &str,
    body: &[u8],
    timeout: Option<Duration>,
) -> Result<Answer, HttpError> {
    let name = socket.display().to_string();
    let stream = UnixStream::connect(socket).map_err(|source| HttpError::Connect {
        socket: name.clone(),
        source,
    })?;
    let no_answer = |reason: String| HttpError::NoAnswer {
        socket: name.clone(),
        reason,
    };
    let _ = stream.set_read_timeout(timeout);
    let _ = stream.set_write_timeout(timeout);
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: dummy\r\nUser-Agent: multus-shim\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let mut w = &stream;
    w.write_all(head.as_bytes())
        .and_then(|_| w.write_all(body))
        .and_then(|_| w.flush())
        .map_err(|e| no_answer(format!("sending the request failed: {e}")))?;
    let mut r = BufReader::new(&stream);
    read_answer(&mut r).map_err(no_answer)
}

fn read_answer(r: &mut impl BufRead) -> Result<Answer, String> {
    let mut line = String::new();
    let read_line = |r: &mut dyn BufRead, line: &mut String| -> Result<(), String> {
        line.clear();
        match r.read_line(line) {
            Ok(0) => Err("the connection closed before the answer was complete".into()),
            Ok(_) => Ok(()),
            Err(e) => Err(format!("reading the answer failed: {e}")),
        }
    };
    read_line(r, &mut line)?;
    let status: u16 = line
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.get(2..5))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("not an HTTP status line: {:?}", line.trim_end()))?;
    let mut length: Option<usize> = None;
    let mut chunked = false;
    loop {
        read_line(r, &mut line)?;
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((k, v)) = header.split_once(':') {
            let v = v.trim();
            if k.eq_ignore_ascii_case("content-length") {
                length = Some(v.parse().map_err(|_| format!("bad Content-Length {v:?}"))?);
            } else if k.eq_ignore_ascii_case("transfer-encoding") {
                chunked = v.to_ascii_lowercase().contains("chunked");
            }
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            read_line(r, &mut line)?;
            let size = line.trim_end().split(';').next().unwrap_or("");
            let size = usize::from_str_radix(size.trim(), 16)
                .map_err(|_| format!("bad chunk size {size:?}"))?;
            if size == 0 {
                break;
            }
            let start = body.len();
            body.resize(start + size, 0);
            r.read_exact(&mut body[start..])
                .map_err(|e| format!("reading a chunk failed: {e}"))?;
            read_line(r, &mut line)?;
        }
    } else if let Some(n) = length {
        body.resize(n, 0);
        r.read_exact(&mut body)
            .map_err(|e| format!("reading the body failed: {e}"))?;
    } else {
        r.read_to_end(&mut body)
            .map_err(|e| format!("reading the body failed: {e}"))?;
    }
    Ok(Answer { status, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Result<Answer, String> {
        read_answer(&mut BufReader::new(raw.as_bytes()))
    }

    #[test]
    fn reads_every_framing_go_uses() {
        let a = parse("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}").unwrap();
        assert_eq!((a.status, a.body.as_slice()), (200, &b"{}"[..]));
        let a = parse("HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n").unwrap();
        assert_eq!((a.status, a.body.as_slice()), (400, &b"abcde"[..]));
        let a = parse("HTTP/1.0 503 Service Unavailable\r\n\r\nbye").unwrap();
        assert_eq!((a.status, a.body.as_slice()), (503, &b"bye"[..]));
    }

    #[test]
    fn a_truncated_answer_is_no_answer() {
        assert!(parse("").is_err());
        assert!(parse("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n{}").is_err());
        assert!(parse("garbage\r\n\r\n").is_err());
    }
}
