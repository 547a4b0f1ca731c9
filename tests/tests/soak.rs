//! The soak's short form (docs/reliability.md, "Soak"): `testkit::soak` for 25 s per mode at
//! 64-way concurrency, faults injected at random (API 5xx, 429, answers past the deadline,
//! dropped connections; delegates that hang or die by SIGKILL). Fails on any hung call, any
//! ADD failure without an injected fault or without a CNI error, any rollback or DEL that left
//! something, any DEL that never succeeded, and anything left on the node at the end.
//! `SOAK_SECONDS` and `SOAK_CONCURRENCY` change the length and the width; `cargo xtask soak`
//! runs the long form.

use std::{sync::Mutex, time::Duration};

use testkit::soak::{self, Mode};

/// One soak at a time: the two modes at once would be 128-way on the node's CPUs.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn soak(mode: Mode) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let seconds = std::env::var("SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(25);
    let concurrency = std::env::var("SOAK_CONCURRENCY")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(64);
    let report = soak::run(soak::Options::new(
        mode,
        Duration::from_secs(seconds),
        concurrency,
    ));
    eprintln!("{}", report.render());
    let failures = report.failures();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(report.cycles > 0, "no cycle completed");
}

#[test]
fn soak_thin_random_faults_no_leak_no_hang() {
    soak(Mode::Thin);
}

#[test]
fn soak_thick_random_faults_no_leak_no_hang() {
    soak(Mode::Thick);
}
