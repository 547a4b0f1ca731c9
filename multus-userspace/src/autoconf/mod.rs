//! Auto-configuration of the runtime's CNI configuration directory (thick daemon and thin
//! agent): pick the primary network, generate `00-multus.conf` (CNI < 1.0.0) or
//! `00-multus.conflist` (≥ 1.0.0) from it, keep it in line while the primary changes,
//! disappears or is overtaken by a file that sorts first, and remove it on `uninstall`.
//! Decisions are pure ([`plan`], [`kubeconfig`]); [`fsio`] is the only file-system code;
//! [`generator`] is one polled pass. Docs: docs/configuration.md ("Auto-configuration").

pub mod cli;
pub mod fsio;
pub mod generator;
pub mod kubeconfig;
pub mod plan;
pub mod thin;
pub mod uninstall;

use std::path::PathBuf;

pub use generator::{Generator, Status};
pub use plan::Flavor;

/// Failures of the agent and of `uninstall` (a pass of the generator reports a [`Status`]
/// instead: it never stops the loop).
#[derive(Debug, thiserror::Error)]
pub enum AutoconfError {
    /// The configuration directory does not exist.
    #[error("the CNI configuration directory {0} does not exist or is not a directory")]
    NoDir(PathBuf),
    /// The kubeconfig cannot be built.
    #[error(transparent)]
    Kubeconfig(#[from] kubeconfig::KubeconfigError),
    /// A file could not be removed.
    #[error("cannot remove {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The signal handling runtime could not start.
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
}
