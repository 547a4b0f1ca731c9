//! One pass of auto-configuration and the state it keeps between passes: list the directory,
//! pick the primary, render the configuration ([`super::plan`]) and rewrite the generated file
//! only when its content differs (so our own writes never trigger anything). The caller polls
//! [`Generator::step`] once a second: a change of the primary's content, its disappearance, or a
//! file that sorts before it is seen on the next pass. Logging happens on changes of state only
//! (and, while waiting for a primary, at start and every [`WAIT_LOG_EVERY`]).

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use super::{
    fsio,
    plan::{self, Flavor},
};

/// While no primary exists, a reminder is logged this often.
pub const WAIT_LOG_EVERY: Duration = Duration::from_secs(30);
/// After this long without a primary (the reference's 120 × 1 s), an error is logged once; the
/// watch goes on, so a primary that comes later is still picked up without a restart.
pub const WAIT_BOUND: Duration = Duration::from_secs(120);
/// How often the directory is looked at.
pub const POLL: Duration = Duration::from_secs(1);

/// Where a pass stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// The generated file is written and matches the primary.
    Current {
        /// The primary's file name.
        primary: String,
        /// The generated file's name.
        file: &'static str,
    },
    /// No primary network (yet, or any more); a generated file already there is kept.
    Waiting(String),
    /// The primary cannot be used (unreadable, not a configuration); the previous generated
    /// file is kept.
    Kept(String),
    /// The generated file could not be written.
    Failed(String),
}

impl Status {
    /// Why the node cannot take pods through us, if it cannot.
    pub fn not_ready(&self) -> Option<&str> {
        match self {
            Status::Current { .. } => None,
            Status::Waiting(r) | Status::Kept(r) | Status::Failed(r) => Some(r),
        }
    }
}

/// Auto-configuration of one configuration directory.
pub struct Generator {
    /// Where the primary is searched (`multusAutoconfigDir`, by default the output directory).
    pub scan_dir: PathBuf,
    /// Where the generated file goes (`cniConfigDir`).
    pub out_dir: PathBuf,
    /// Pins the primary's file name (`multusMasterCNI`).
    pub master: Option<String>,
    /// Thick or thin.
    pub flavor: Flavor,
    started: Instant,
    wait_logged: Option<Instant>,
    bound_logged: bool,
    last: Option<Status>,
}

impl Generator {
    /// A generator that has not looked at the directory yet.
    pub fn new(
        scan_dir: PathBuf,
        out_dir: PathBuf,
        master: Option<String>,
        flavor: Flavor,
    ) -> Self {
        Generator {
            scan_dir,
            out_dir,
            master: master.filter(|m| !m.is_empty()),
            flavor,
            started: Instant::now(),
            wait_logged: None,
            bound_logged: false,
            last: None,
        }
    }

    /// One pass: brings the generated file in line with the directory, logs what changed.
    pub fn step(&mut self) -> Status {
        let status = self.pass();
        self.log(&status);
        self.last = Some(status.clone());
        status
    }

    fn kept_note(&self) -> String {
        [plan::CONF, plan::CONFLIST]
            .iter()
            .find(|n| fsio::current(&self.out_dir.join(n)).is_some())
            .map(|n| format!("; {n} is kept in place"))
            .unwrap_or_default()
    }

    fn pass(&mut self) -> Status {
        let names = match fsio::list(&self.scan_dir) {
            Ok(n) => n,
            Err(e) => {
                return Status::Waiting(format!(
                    "cannot list {}: {e}{}",
                    self.scan_dir.display(),
                    self.kept_note()
                ))
            }
        };
        let Some(name) = plan::pick_primary(&names, self.master.as_deref()) else {
            let what = match &self.master {
                Some(m) => format!("the primary network {m} (multusMasterCNI) is not in"),
                None => "no primary network (a .conf or .conflist not named 00-multus*) in".into(),
            };
            return Status::Waiting(format!(
                "{what} {}{}",
                self.scan_dir.display(),
                self.kept_note()
            ));
        };
        let path = self.scan_dir.join(&name);
        let primary = match fsio::read_bounded(&path)
            .map_err(|e| e.to_string())
            .and_then(|b| plan::parse_primary(&b).map_err(|e| e.to_string()))
        {
            Ok(p) => p,
            Err(e) => {
                return Status::Kept(format!(
                    "the primary network {} is unusable ({e}){}",
                    path.display(),
                    self.kept_note()
                ))
            }
        };
        let rendered = plan::render(&self.flavor, &path, &primary);
        let out = self.out_dir.join(rendered.name);
        if fsio::current(&out).as_deref() != Some(rendered.bytes.as_slice()) {
            if let Err(e) = fsio::write_atomic(&out, &rendered.bytes, 0o600) {
                return Status::Failed(format!("cannot write {}: {e}", out.display()));
            }
            tracing::info!(primary = %path.display(), file = %out.display(),
                cni_version = %rendered.version, "configuration written");
        }
        // The other form (the primary's version crossed 1.0.0): removed when it is ours, so the
        // runtime does not keep reading a stale file that sorts first.
        let other = self.out_dir.join(rendered.other);
        if fsio::current(&other).is_some_and(|b| plan::is_generated(&b)) {
            match fsio::remove(&other) {
                Ok(_) => {
                    tracing::info!(file = %other.display(), "removed the configuration of the other form")
                }
                Err(e) => tracing::warn!("cannot remove {}: {e}", other.display()),
            }
        }
        Status::Current {
            primary: name,
            file: rendered.name,
        }
    }

    fn log(&mut self, status: &Status) {
        let changed = self.last.as_ref() != Some(status);
        match status {
            Status::Current { primary, .. } => {
                if changed {
                    self.wait_logged = None;
                    self.bound_logged = false;
                    tracing::info!(primary = %primary, "the generated configuration follows the primary network");
                }
            }
            Status::Waiting(reason) => {
                let due = self
                    .wait_logged
                    .is_none_or(|at| at.elapsed() >= WAIT_LOG_EVERY);
                if changed || due {
                    tracing::info!(
                        waited_s = self.started.elapsed().as_secs(),
                        "waiting: {reason}"
                    );
                    self.wait_logged = Some(Instant::now());
                }
                if !self.bound_logged && self.started.elapsed() >= WAIT_BOUND {
                    tracing::error!(
                        "no primary network after {}s: {reason}; still watching {}",
                        WAIT_BOUND.as_secs(),
                        self.scan_dir.display()
                    );
                    self.bound_logged = true;
                }
            }
            Status::Kept(reason) | Status::Failed(reason) => {
                if changed {
                    tracing::error!("{reason}");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Map, Value};

    use super::*;

    fn gen(dir: &std::path::Path) -> Generator {
        Generator::new(
            dir.into(),
            dir.into(),
            None,
            Flavor::Thick {
                version: None,
                extra: Map::new(),
            },
        )
    }

    fn read(dir: &std::path::Path, name: &str) -> Value {
        serde_json::from_slice(&std::fs::read(dir.join(name)).unwrap()).unwrap()
    }

    #[test]
    fn waits_then_follows_the_primary_across_versions_and_earlier_files() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path();
        let mut g = gen(dir);
        assert!(matches!(g.step(), Status::Waiting(_)));
        std::fs::write(
            dir.join("20-b.conf"),
            json!({"cniVersion": "0.3.1", "name": "b", "type": "bridge"}).to_string(),
        )
        .unwrap();
        assert_eq!(
            g.step(),
            Status::Current {
                primary: "20-b.conf".into(),
                file: plan::CONF
            }
        );
        assert_eq!(
            read(dir, plan::CONF)["clusterNetwork"],
            json!(dir.join("20-b.conf"))
        );
        // An earlier file in the list form, CNI 1.0.0: re-picked, conflist written, conf removed.
        std::fs::write(
            dir.join("10-a.conflist"),
            json!({"cniVersion": "1.0.0", "name": "a", "plugins": [
                {"type": "bridge", "capabilities": {"ips": true}}]})
            .to_string(),
        )
        .unwrap();
        assert_eq!(
            g.step(),
            Status::Current {
                primary: "10-a.conflist".into(),
                file: plan::CONFLIST
            }
        );
        assert!(!dir.join(plan::CONF).exists());
        assert_eq!(
            read(dir, plan::CONFLIST)["plugins"][0]["capabilities"],
            json!({"ips": true})
        );
        // Unchanged: no rewrite (the inode stays).
        use std::os::unix::fs::MetadataExt;
        let ino = std::fs::metadata(dir.join(plan::CONFLIST)).unwrap().ino();
        g.step();
        assert_eq!(
            std::fs::metadata(dir.join(plan::CONFLIST)).unwrap().ino(),
            ino
        );
        // The primary becomes garbage: the previous file stays as it was.
        std::fs::write(dir.join("10-a.conflist"), b"").unwrap();
        assert!(matches!(g.step(), Status::Kept(r) if r.contains("00-multus.conflist is kept")));
        assert_eq!(
            read(dir, plan::CONFLIST)["plugins"][0]["clusterNetwork"],
            json!(dir.join("10-a.conflist"))
        );
        // Removed: the next one is picked.
        std::fs::remove_file(dir.join("10-a.conflist")).unwrap();
        assert_eq!(
            g.step(),
            Status::Current {
                primary: "20-b.conf".into(),
                file: plan::CONF
            }
        );
        assert!(!dir.join(plan::CONFLIST).exists());
        // None left: ours is kept, not ready.
        std::fs::remove_file(dir.join("20-b.conf")).unwrap();
        let s = g.step();
        assert!(
            s.not_ready()
                .is_some_and(|r| r.contains("00-multus.conf is kept")),
            "{s:?}"
        );
        assert!(dir.join(plan::CONF).exists());
    }

    #[test]
    fn a_conf_of_the_other_form_that_is_not_ours_is_left_alone() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path();
        std::fs::write(
            dir.join(plan::CONFLIST),
            br#"{"name":"hand-made","plugins":[]}"#,
        )
        .unwrap();
        std::fs::write(
            dir.join("10-b.conf"),
            json!({"cniVersion": "0.4.0", "name": "b", "type": "bridge"}).to_string(),
        )
        .unwrap();
        let mut g = gen(dir);
        assert!(g.step().not_ready().is_none());
        assert!(dir.join(plan::CONFLIST).exists());
    }
}
