//! Fault injection for the crash tests (tests/tests/crash_steps.rs, docs/reliability.md): every
//! step of ADD, DEL, CHECK and GC where a crash leaves a distinct state calls [`point`] with its
//! name. Built with the cargo feature `fault-injection`, a process whose environment names the step
//! in [`ENV`] (`<step>` or `<step>:<nth>`, the nth time this process reaches it; 1 by default)
//! kills itself there with SIGKILL: nothing unwinds, no rollback runs. Without the feature (the
//! default, every product binary) [`point`] is empty and the environment is never read.
//!
//! A call crashes as a whole: the `multus` (or `multus-daemon`) process that finds [`ENV`] set
//! makes itself the leader of a process group ([`lead_group`]) and records it in [`GROUP_ENV`]; a
//! delegate (an `ebpf-sbr` child, which leads a group of its own) reaching the step kills that
//! group and itself, so the meta-plugin (or the daemon) dies with it, as in a node crash.

/// Every step name, in the order a call reaches them. `add.*` steps are reached by an ADD, `del.*`
/// by a DEL, `check.*` by a CHECK, `gc.*` by a GC; `*.sbr.*` ones in the SBR library (the
/// `ebpf-sbr` delegate, or `multus` itself covering the pod after its delegates).
pub const STEPS: &[&str] = &[
    "add.config-read",
    "add.planned",
    "add.cache-written",
    "add.delegate-start",
    "add.sbr.programs-loaded",
    "add.sbr.pod-pinned",
    "add.sbr.maps-written",
    "add.sbr.carrier-created",
    "add.sbr.routes-added",
    "add.sbr.attached",
    "add.sbr.rp-filter-loosened",
    "add.delegate-end",
    "add.default-routes-set",
    "add.sbr-covered",
    "add.cache-completed",
    "add.network-status-written",
    "del.config-read",
    "del.cache-read",
    "del.delegate-start",
    "del.sbr.carrier-removed",
    "del.sbr.config-restored",
    "del.sbr.detached",
    "del.sbr.maps-purged",
    "del.sbr.pins-removed",
    "del.delegate-end",
    "del.info-files-removed",
    "del.cache-removed",
    "check.config-read",
    "check.delegate-start",
    "check.delegate-end",
    "gc.config-read",
    "gc.delegate-start",
    "gc.delegate-end",
];

/// The environment variable that names the step to crash at (`<step>[:<nth>]`).
pub const ENV: &str = "MULTUS_FAULT";
/// Set by [`lead_group`]: the process group a crash kills.
pub const GROUP_ENV: &str = "MULTUS_FAULT_GROUP";

/// A named step: with the feature, crashes the call here when [`ENV`] names it.
#[cfg(feature = "fault-injection")]
pub fn point(step: &'static str) {
    imp::point(step)
}

/// A named step: nothing (built without `fault-injection`).
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn point(_step: &'static str) {}

/// Called first by the `multus` binary: with [`ENV`] set, makes this process the leader of a group
/// that the crash kills as a whole (the delegates it runs inherit [`GROUP_ENV`]).
#[cfg(feature = "fault-injection")]
pub fn lead_group() {
    imp::lead_group()
}

/// Nothing (built without `fault-injection`).
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn lead_group() {}

/// The step a call for `command` reaches after reading its configuration, and before and after
/// each delegate plugin (per command, since a GC runs DEL of the stale containers).
pub fn command_step(command: crate::cni::Command, step: Step) -> &'static str {
    use crate::cni::Command::*;
    match (command, step) {
        (Add, Step::ConfigRead) => "add.config-read",
        (Add, Step::DelegateStart) => "add.delegate-start",
        (Add, Step::DelegateEnd) => "add.delegate-end",
        (Del, Step::ConfigRead) => "del.config-read",
        (Del, Step::DelegateStart) => "del.delegate-start",
        (Del, Step::DelegateEnd) => "del.delegate-end",
        (Check, Step::ConfigRead) => "check.config-read",
        (Check, Step::DelegateStart) => "check.delegate-start",
        (Check, Step::DelegateEnd) => "check.delegate-end",
        (Gc, Step::ConfigRead) => "gc.config-read",
        (Gc, Step::DelegateStart) => "gc.delegate-start",
        (Gc, Step::DelegateEnd) => "gc.delegate-end",
        (Status | Version, _) => "",
    }
}

/// The steps every command has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// The configuration was parsed.
    ConfigRead,
    /// A delegate plugin is about to run.
    DelegateStart,
    /// A delegate plugin returned.
    DelegateEnd,
}

#[cfg(feature = "fault-injection")]
mod imp {
    use std::sync::{
        atomic::{AtomicU32, Ordering},
        OnceLock,
    };

    use super::{ENV, GROUP_ENV};

    static TARGET: OnceLock<Option<(String, u32)>> = OnceLock::new();
    static HITS: AtomicU32 = AtomicU32::new(0);

    /// The step and the hit to crash at, from [`ENV`].
    fn target() -> Option<&'static (String, u32)> {
        TARGET
            .get_or_init(|| {
                let spec = std::env::var(ENV).ok()?;
                let (step, nth) = match spec.rsplit_once(':') {
                    Some((step, nth)) => (step, nth.parse().ok()?),
                    None => (spec.as_str(), 1),
                };
                Some((step.to_string(), nth))
            })
            .as_ref()
    }

    pub fn point(step: &'static str) {
        let Some((name, nth)) = target() else {
            return;
        };
        if name != step || HITS.fetch_add(1, Ordering::SeqCst) + 1 != *nth {
            return;
        }
        eprintln!("fault injection: SIGKILL at {step}");
        // SAFETY: getpgrp and kill have no memory-safety preconditions.
        unsafe {
            let group = std::env::var(GROUP_ENV)
                .ok()
                .and_then(|g| g.parse::<libc::pid_t>().ok());
            // Only the group a multus process made for this call, which this process is in
            // or whose leader started it (a delegate leads a group of its own): never a
            // caller's own group.
            if let Some(group) =
                group.filter(|g| *g > 1 && (*g == libc::getpgrp() || *g == libc::getppid()))
            {
                libc::kill(-group, libc::SIGKILL);
            }
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }

    pub fn lead_group() {
        if std::env::var_os(ENV).is_none() || std::env::var_os(GROUP_ENV).is_some() {
            return;
        }
        // SAFETY: setpgid/getpid have no memory-safety preconditions; set_var runs before any
        // other thread exists (first thing in main).
        unsafe {
            if libc::setpgid(0, 0) == 0 {
                std::env::set_var(GROUP_ENV, libc::getpid().to_string());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every step name is passed to [`point`] by some call site of the library (a literal, or one
    /// of [`command_step`]'s), and every call site names a listed step.
    #[test]
    fn every_step_is_reached_by_a_call_site() {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut text = String::new();
        let mut stack = vec![src];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "rs") && !p.ends_with("fault.rs") {
                    text.push_str(&std::fs::read_to_string(&p).unwrap());
                }
            }
        }
        let literal: Vec<&str> = text
            .split("fault::point(\"")
            .skip(1)
            .filter_map(|s| s.split('"').next())
            .collect();
        for name in &literal {
            assert!(
                STEPS.contains(name),
                "fault::point({name:?}) is not in STEPS"
            );
        }
        use crate::cni::Command::*;
        let per_command: Vec<&str> = [Add, Del, Check, Gc]
            .into_iter()
            .flat_map(|c| {
                [Step::ConfigRead, Step::DelegateStart, Step::DelegateEnd]
                    .map(|s| command_step(c, s))
            })
            .collect();
        assert!(text.contains("fault::point(fault::command_step("));
        for step in STEPS {
            assert!(
                literal.contains(step) || per_command.contains(step),
                "step {step} is reached by no call site"
            );
        }
        let mut unique = STEPS.to_vec();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), STEPS.len(), "a step is listed twice");
    }
}
