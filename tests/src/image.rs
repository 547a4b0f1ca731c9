//! The container image `cargo xtask image` builds (`localhost/multus-rs:<version>`, saved as
//! `target/image/multus-rs-<version>.tar`), for the tests that check or run it.

use std::{path::PathBuf, process::Command, sync::OnceLock};

use crate::bins;

/// The image's repository (xtask/src/image.rs).
pub const REPOSITORY: &str = "localhost/multus-rs";
/// The size goal (xtask/src/image.rs).
pub const MAX_IMAGE_BYTES: u64 = 25_000_000;
/// The names of the multi-call binary in the image, and the shim.
pub const BINARIES: &[&str] = &[
    "multus-daemon",
    "multus",
    "multusctl",
    "ebpf-sbr",
    "multus-shim",
];

/// The workspace version, the image's default tag.
pub fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

/// `localhost/multus-rs:<version>`.
pub fn reference() -> String {
    format!("{REPOSITORY}:{}", version())
}

/// What `cargo xtask image` built.
#[derive(Clone, Debug)]
pub struct Built {
    /// The saved image (docker-archive), for `podman load`.
    pub archive: PathBuf,
    /// The directory its binaries came from (`target/<host tuple>/image`, the `image` profile).
    pub binaries_dir: PathBuf,
    /// What xtask printed.
    pub stdout: String,
}

/// Runs `cargo xtask image` once per test process (it builds the binaries when they are stale and
/// reuses podman's layer cache when they are not) into `storage_env`'s podman storage.
pub fn build(storage_env: &[(String, PathBuf)]) -> Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let root = bins::workspace_root();
            let out = Command::new(env!("CARGO"))
                .current_dir(&root)
                .args(["xtask", "image"])
                .envs(storage_env.iter().map(|(k, v)| (k, v)))
                .output()
                .expect("run cargo xtask image");
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            assert!(
                out.status.success(),
                "cargo xtask image failed:\n{stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let binaries_dir = root
                .join("target")
                .join(
                    bins::own_profile_dir()
                        .parent()
                        .and_then(|p| p.file_name())
                        .expect("target/<host tuple>"),
                )
                .join("image");
            Built {
                archive: root
                    .join("target")
                    .join("image")
                    .join(format!("multus-rs-{}.tar", version())),
                binaries_dir,
                stdout,
            }
        })
        .clone()
}
