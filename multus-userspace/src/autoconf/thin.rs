//! The thin-mode agent (`multus-daemon thin`): a long-running loop that keeps
//! `00-multus.conf`/`.conflist` (the primary embedded as `delegates[0]`) and the kubeconfig it
//! names in line with the primary network and the service account, once a second, until SIGTERM
//! (which leaves both files in place). The kubeconfig is written before the configuration
//! that names it, so the runtime never sees a configuration pointing at a missing kubeconfig.
//! The token is never logged.

use std::path::PathBuf;

use super::{
    fsio,
    generator::{Generator, POLL},
    kubeconfig,
    plan::{self, Flavor},
    AutoconfError,
};

/// Default service-account directory (what the kubelet mounts in every pod).
pub const DEFAULT_SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// Default configuration directory as the node sees it.
pub const DEFAULT_NODE_CONF_DIR: &str = "/etc/cni/net.d";

/// The agent's flags.
#[derive(Debug, Clone)]
pub struct ThinOptions {
    /// The configuration directory as this process sees it (`--cni-conf-dir`).
    pub cni_conf_dir: PathBuf,
    /// The same directory as the node's runtime and plugins see it (`--node-cni-conf-dir`),
    /// used for paths written into the generated files.
    pub node_cni_conf_dir: PathBuf,
    /// Pins the primary's file name (`--master-cni`).
    pub master_cni: Option<String>,
    /// Where `token` and `ca.crt` are (`--service-account-dir`).
    pub service_account_dir: PathBuf,
}

/// Keeps the thin kubeconfig in line with the service account.
pub struct KubeconfigKeeper {
    server: String,
    service_account_dir: PathBuf,
    path: PathBuf,
    last_error: Option<String>,
}

impl KubeconfigKeeper {
    /// A keeper writing `<cni_conf_dir>/multus.d/multus.kubeconfig` for the API at `server`.
    pub fn new(
        server: String,
        service_account_dir: PathBuf,
        cni_conf_dir: &std::path::Path,
    ) -> Self {
        KubeconfigKeeper {
            server,
            service_account_dir,
            path: cni_conf_dir.join(plan::KUBECONFIG),
            last_error: None,
        }
    }

    /// Rewrites the kubeconfig when the token or the CA changed; `Ok(true)` when one is in place.
    /// A token or CA that cannot be read leaves the previous file as it is.
    pub fn step(&mut self) -> bool {
        let result = (|| -> Result<bool, String> {
            let token = fsio::read_bounded(&self.service_account_dir.join("token"))
                .map_err(|e| format!("cannot read the service-account token: {e}"))?;
            let ca = fsio::read_bounded(&self.service_account_dir.join("ca.crt"))
                .map_err(|e| format!("cannot read the service-account ca.crt: {e}"))?;
            let bytes = kubeconfig::render(&self.server, &ca, &token).map_err(|e| e.to_string())?;
            if fsio::current(&self.path).as_deref() == Some(bytes.as_slice()) {
                return Ok(false);
            }
            if let Some(dir) = self.path.parent() {
                fsio::ensure_private_dir(dir).map_err(|e| e.to_string())?;
            }
            fsio::write_atomic(&self.path, &bytes, 0o600)
                .map_err(|e| format!("cannot write {}: {e}", self.path.display()))?;
            Ok(true)
        })();
        match result {
            Ok(written) => {
                if written {
                    tracing::info!(file = %self.path.display(), "kubeconfig written from the service account");
                }
                self.last_error = None;
                true
            }
            Err(e) => {
                if self.last_error.as_ref() != Some(&e) {
                    tracing::error!(file = %self.path.display(), "{e}; the previous kubeconfig (if any) is kept");
                    self.last_error = Some(e);
                }
                self.path.exists()
            }
        }
    }
}

/// Runs the agent until SIGTERM or SIGINT. The API server's address comes from
/// `KUBERNETES_SERVICE_HOST` and `KUBERNETES_SERVICE_PORT`.
pub fn run(options: &ThinOptions) -> Result<(), AutoconfError> {
    let host = std::env::var("KUBERNETES_SERVICE_HOST").unwrap_or_default();
    let port = std::env::var("KUBERNETES_SERVICE_PORT").unwrap_or_default();
    let server = kubeconfig::server_url(&host, &port)?;
    if !options.cni_conf_dir.is_dir() {
        return Err(AutoconfError::NoDir(options.cni_conf_dir.clone()));
    }
    let mut keeper = KubeconfigKeeper::new(
        server,
        options.service_account_dir.clone(),
        &options.cni_conf_dir,
    );
    let mut generator = Generator::new(
        options.cni_conf_dir.clone(),
        options.cni_conf_dir.clone(),
        options.master_cni.clone(),
        Flavor::Thin {
            kubeconfig: options.node_cni_conf_dir.join(plan::KUBECONFIG),
        },
    );
    tracing::info!(dir = %options.cni_conf_dir.display(), "thin agent started");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(AutoconfError::Runtime)?;
    runtime.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).map_err(AutoconfError::Runtime)?;
        let mut int = signal(SignalKind::interrupt()).map_err(AutoconfError::Runtime)?;
        loop {
            if keeper.step() {
                generator.step();
            }
            tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = tokio::time::sleep(POLL) => {}
            }
        }
        tracing::info!("thin agent stopped; the generated files stay in place");
        Ok(())
    })
}
