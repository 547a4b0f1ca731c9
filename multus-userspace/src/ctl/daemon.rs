//! `multusctl daemon`: the state of the node's `multus-daemon` (thick mode), read from its
//! `GET /status` over the socket: liveness, readiness, calls in flight, the watch caches' sync
//! state, calls answered.

use std::{io::Write, path::PathBuf, time::Duration};

use clap::Args;
use serde::Serialize;

use super::{write_document, CtlError, Format, EXIT_OK, EXIT_PROBLEMS};
use crate::daemon::{
    api::{self, DaemonStatus},
    config::DEFAULT_SOCKET_DIR,
};
use crate::shim::http;

/// Options of `daemon`.
#[derive(Debug, Clone, Args)]
pub struct DaemonArgs {
    /// The daemon's socket directory (`socketDir` of its configuration).
    #[arg(long, value_name = "DIR", default_value = DEFAULT_SOCKET_DIR)]
    pub socket_dir: PathBuf,
    /// Exit 0 whenever the daemon answers, ready or not (starting, draining after SIGTERM): a
    /// liveness probe, which must not restart a daemon that is only waiting.
    #[arg(long)]
    pub live: bool,
}

/// The JSON document of `daemon -o json`.
#[derive(Debug, Serialize)]
struct Report {
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    socket: String,
    running: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<DaemonStatus>,
}

/// Prints the daemon's state; exits 1 when it is not running or not ready (with `--live`: only
/// when it is not running).
pub fn run(args: &DaemonArgs, format: Format, out: &mut dyn Write) -> Result<u8, CtlError> {
    let socket = args.socket_dir.join(api::SOCKET_NAME);
    let answer = http::request(
        &socket,
        "GET",
        api::STATUS_PATH,
        b"",
        Some(Duration::from_secs(2)),
    );
    let (status, error) = match answer {
        Ok(a) if a.status == 200 => match serde_json::from_slice::<DaemonStatus>(&a.body) {
            Ok(s) => (Some(s), None),
            Err(e) => (None, Some(format!("unreadable /status answer: {e}"))),
        },
        Ok(a) => (
            None,
            Some(format!(
                "/status answered {} (a daemon without /status, such as the reference's?)",
                a.status
            )),
        ),
        Err(e) => (None, Some(e.to_string())),
    };
    let healthy = status.as_ref().is_some_and(|s| s.ready || args.live);
    let report = Report {
        api_version: "multusctl/v1",
        socket: socket.display().to_string(),
        running: status.is_some(),
        error,
        status,
    };
    if !write_document(out, format, &report, false)? {
        render(&report, out)?;
    }
    Ok(if healthy { EXIT_OK } else { EXIT_PROBLEMS })
}

fn render(r: &Report, out: &mut dyn Write) -> Result<(), CtlError> {
    let Some(s) = &r.status else {
        writeln!(
            out,
            "multus-daemon: not running at {} ({})",
            r.socket,
            r.error.as_deref().unwrap_or("no answer")
        )?;
        return Ok(());
    };
    let state = match (s.ready, s.draining) {
        (true, _) => "ready",
        (false, true) => "draining (SIGTERM received)",
        (false, false) => "not ready",
    };
    writeln!(out, "multus-daemon {} at {}: {state}", s.version, r.socket)?;
    for reason in &s.not_ready {
        writeln!(out, "not ready: {reason}")?;
    }
    for reason in &s.degraded {
        writeln!(out, "degraded: {reason}")?;
    }
    writeln!(
        out,
        "calls in flight: {} ({} waiting for a slot)",
        s.in_flight, s.waiting
    )?;
    if !s.kubernetes {
        writeln!(out, "kubernetes: no API client (config-only networks)")?;
    }
    if !s.caches.is_empty() {
        writeln!(
            out,
            "{:<32} {:<7} {:>8} {:>11} {:>7}",
            "CACHE", "SYNCED", "OBJECTS", "LAST EVENT", "ERRORS"
        )?;
        for c in &s.caches {
            let age = c
                .last_event_age_seconds
                .map_or("-".to_string(), |a| format!("{a:.1}s ago"));
            writeln!(
                out,
                "{:<32} {:<7} {:>8} {:>11} {:>7}",
                c.resource,
                if c.synced { "yes" } else { "no" },
                c.objects,
                age,
                c.errors
            )?;
        }
    }
    if !s.calls.is_empty() {
        let calls: Vec<String> = s
            .calls
            .iter()
            .map(|c| format!("{} code {}: {}", c.command, c.code, c.count))
            .collect();
        writeln!(out, "calls answered: {}", calls.join(", "))?;
    }
    Ok(())
}
