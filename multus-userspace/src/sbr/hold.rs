//! A long-lived process's hold on the programs (the node daemon's): loaded and pinned once when it
//! starts and kept while it runs, also while no pod uses them, so that an ADD only attaches (the
//! first pod on a node otherwise pays the load: BTF parse and verification, ~30 ms). The hold is
//! an entry of the version's `users` map under [`HOLDER_COOKIE`] (no network namespace has cookie
//! 0) whose value is the holder's pid; [`Hold::release`] removes it (and the version when no pod
//! uses it), and GC removes a hold whose process is gone.

use super::error::SbrError;
use super::node::{drop_unused_version, on_node};
use super::pins::{self, Lock};
use super::programs::Programs;
use super::types::SbrConfig;
use crate::netns::mountns::IfUnknown;

/// The `users` key of a hold: no network namespace has cookie 0.
pub const HOLDER_COOKIE: u64 = 0;

/// The programs held loaded by this process; see the module documentation.
#[derive(Debug)]
pub struct Hold {
    cfg: SbrConfig,
    version: String,
    /// Whether this hold loaded the programs (none were pinned).
    pub loaded: bool,
}

/// Loads (when no other process has) and holds the current program version of `cfg`.
pub fn hold(cfg: &SbrConfig) -> Result<Hold, SbrError> {
    on_node(IfUnknown::Refuse, || {
        pins::ensure_bpffs(&cfg.bpffs_dir)?;
        let _lock = Lock::acquire(&cfg.bpffs_dir)?;
        let progs = Programs::at(&cfg.bpffs_dir, &Programs::current_name(cfg.debug))?;
        let loaded = progs.ensure_loaded(cfg.debug)?;
        progs
            .users()?
            .insert(HOLDER_COOKIE, u64::from(std::process::id()), 0)
            .map_err(|e| SbrError::Map {
                map: "users",
                reason: e.to_string(),
            })?;
        Ok(Hold {
            cfg: cfg.clone(),
            version: progs.name().to_string(),
            loaded,
        })
    })
}

impl Hold {
    /// The program version held.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Gives the hold up: the version goes too when no pod uses it.
    pub fn release(self) -> Result<(), SbrError> {
        on_node(IfUnknown::RunHere, || {
            let _lock = Lock::acquire(&self.cfg.bpffs_dir)?;
            let progs = Programs::at(&self.cfg.bpffs_dir, &self.version)?;
            if let Ok(mut users) = progs.users() {
                if users.get(&HOLDER_COOKIE, 0).ok() == Some(u64::from(std::process::id())) {
                    let _ = users.remove(&HOLDER_COOKIE);
                }
            }
            drop_unused_version(&self.cfg.bpffs_dir, &progs)
        })
    }
}

/// Whether the hold recorded under `holder` (a pid) belongs to a process that still runs.
pub(super) fn holder_alive(holder: u64) -> bool {
    holder != 0 && std::path::Path::new(&format!("/proc/{holder}")).exists()
}
