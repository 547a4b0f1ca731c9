//! Where an operation's time goes: named phases, summed when a name repeats.

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

/// One phase of an ADD or DEL and the time spent in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Phase {
    /// `lock`, `load` (loading or opening the programs), `pod` (cookie, pod maps), `read`
    /// (netlink dumps), `maps` (map entries), `anchor` (the carrier's anchor namespace), `device`
    /// (carrier create/retire/delete), `routes`,
    /// `attach`, `detach`, `config` (sysctls, neighbours), `pins` (removing pins and mounts).
    pub name: &'static str,
    /// Time spent.
    pub time: Duration,
}

/// A running log of phases. Each [`Phases::mark`] charges the time since the previous mark.
pub struct Phases {
    inner: Mutex<(Instant, Vec<Phase>)>,
}

impl Phases {
    /// Starts the clock.
    pub fn new() -> Self {
        Self {
            inner: Mutex::new((Instant::now(), Vec::new())),
        }
    }

    /// Charges the time since the previous mark to `name`.
    pub fn mark(&self, name: &'static str) {
        if let Ok(mut g) = self.inner.lock() {
            let now = Instant::now();
            let d = now - g.0;
            g.0 = now;
            match g.1.iter_mut().find(|p| p.name == name) {
                Some(p) => p.time += d,
                None => g.1.push(Phase { name, time: d }),
            }
        }
    }

    /// The phases so far.
    pub fn take(&self) -> Vec<Phase> {
        self.inner
            .lock()
            .map(|mut g| std::mem::take(&mut g.1))
            .unwrap_or_default()
    }
}

impl Default for Phases {
    fn default() -> Self {
        Self::new()
    }
}
