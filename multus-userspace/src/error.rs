//! The crate's error type and its mapping to CNI error codes: the one place where a failure
//! becomes a spec code.

use crate::{
    cni::{env::EnvError, CniError, ErrorCode},
    config::ConfigError,
    delegate::{cache::CacheError, lock::LockError, DelegateError, ExecError},
    devices::{devinfo::DevInfoError, DeviceError},
    kube::{annotations::AnnotationError, client::KubeError, resolve::ResolveError},
    netns::NetnsError,
    sbr::SbrError,
};

/// Every failure of a plugin call.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Invalid or missing environment.
    #[error(transparent)]
    Env(#[from] EnvError),
    /// Invalid configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The network namespace could not be used.
    #[error(transparent)]
    Netns(#[from] NetnsError),
    /// One delegate failed.
    #[error(transparent)]
    Delegate(#[from] DelegateError),
    /// Several delegates failed (DEL and GC attempt them all).
    #[error("{}", join(.0))]
    Delegates(Vec<DelegateError>),
    /// ADD failed and was rolled back; `rollback` lists what could not be undone.
    #[error("{source}")]
    RolledBack {
        /// The original failure.
        source: Box<Error>,
        /// Failures while undoing.
        rollback: Vec<String>,
    },
    /// The delegate cache.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// The container lock.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// The cluster network is not ready (readiness indicator file).
    #[error("{message}")]
    NotReady {
        /// What is missing.
        message: String,
        /// 11 for ADD (retry), 50 for STATUS.
        code: ErrorCode,
    },
    /// ADD refused: the container already has an ADD that this one must not undo.
    #[error("{0}")]
    AlreadyAdded(String),
    /// Nothing is known about the container (CHECK without ADD).
    #[error("{0}")]
    UnknownContainer(String),
    /// The Kubernetes API failed.
    #[error(transparent)]
    Kube(#[from] KubeError),
    /// A network reference could not be resolved.
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    /// A pod annotation is malformed.
    #[error(transparent)]
    Annotation(#[from] AnnotationError),
    /// Device IDs of a resource could not be found.
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// A device-info file could not be used.
    #[error(transparent)]
    DevInfo(#[from] DevInfoError),
    /// Netlink work inside the pod failed.
    #[error("{0}")]
    Netlink(String),
    /// The eBPF source-based-routing library failed.
    #[error(transparent)]
    Sbr(#[from] SbrError),
    /// A CNI error produced elsewhere (a module with its own mapping, such as Kubernetes or eBPF).
    #[error("{0}")]
    Cni(CniError),
}

fn join(errors: &[DelegateError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// The CNI code of a delegate failure: the delegate's own code when it gave one.
fn delegate_code(e: &DelegateError) -> ErrorCode {
    match &e.source {
        ExecError::Plugin(inner) => inner.code,
        ExecError::NotFound { .. } => ErrorCode::InvalidNetworkConfig,
        _ => ErrorCode::DELEGATE_FAILED,
    }
}

/// API outages are worth retrying later; other API failures are plugin errors.
fn kube_code(e: &KubeError) -> ErrorCode {
    match e {
        KubeError::Deadline { .. } => ErrorCode::TryAgainLater,
        KubeError::Config { .. } | KubeError::Certificate { .. } => ErrorCode::InvalidNetworkConfig,
        _ => ErrorCode::KUBERNETES,
    }
}

/// The CNI code of a namespace failure.
fn netns_code(e: &NetnsError) -> ErrorCode {
    match e {
        NetnsError::NotFound(_) => ErrorCode::UnknownContainer,
        NetnsError::NotNetns(_) => ErrorCode::InvalidEnvironment,
        _ => ErrorCode::IoFailure,
    }
}

/// The CNI code of an SBR failure.
fn sbr_code(e: &SbrError) -> ErrorCode {
    match e {
        SbrError::InvalidIfName(_) | SbrError::ReservedIfName(_) => ErrorCode::InvalidEnvironment,
        SbrError::Netns(e) => netns_code(e),
        SbrError::InterfaceNotFound(_) => ErrorCode::UnknownContainer,
        SbrError::Bpffs { .. } | SbrError::Pin { .. } | SbrError::Sysctl { .. } => {
            ErrorCode::IoFailure
        }
        SbrError::UnsupportedLinkType { .. }
        | SbrError::NoAddresses(_)
        | SbrError::AddressNotOnInterface { .. } => ErrorCode::InvalidNetworkConfig,
        SbrError::Netlink { .. } => ErrorCode::NETLINK,
        SbrError::Drift(_) => ErrorCode::SBR_DRIFT,
        SbrError::Multiple(list) => list.first().map(sbr_code).unwrap_or(ErrorCode::EBPF),
        // Load, map and attach failures, missing kernel support, and anything the library adds later.
        #[allow(unreachable_patterns)]
        _ => ErrorCode::EBPF,
    }
}

/// What an operator can do when the node's mount namespace cannot be used.
const NODE_MOUNT_NS_ADVICE: &str =
    "run the plugin in the node's mount namespace (`nsenter --net=<netns>` \
     rather than `ip netns exec`), or as root with CAP_SYS_ADMIN and CAP_SYS_CHROOT so that it can \
     enter pid 1's; see docs/cli.md";

/// What an operator can do about an SBR failure (the error's `details`).
fn sbr_advice(e: &SbrError) -> &'static str {
    match e {
        SbrError::Drift(_) => {
            "run `multusctl repair <container id>` to repair the SBR state (it touches nothing else), or DEL and ADD the attachment"
        }
        SbrError::Bpffs { .. } | SbrError::Pin { .. } => {
            "bpffsDir must be a directory on bpffs, or one where bpffs can be mounted (CAP_SYS_ADMIN)"
        }
        SbrError::TcxUnsupported => "the programs are attached with TCX: Linux 6.6 or later is needed",
        SbrError::Netns(NetnsError::NodeMountNs(_)) => NODE_MOUNT_NS_ADVICE,
        SbrError::Load(_) | SbrError::Attach { .. } | SbrError::Map { .. } => {
            "the plugin needs CAP_BPF, CAP_NET_ADMIN and CAP_SYS_ADMIN (or root); run it with debug: true for the BPF log"
        }
        SbrError::AddressNotOnInterface { .. } | SbrError::NoAddresses(_) => {
            "prevResult must describe the interface the plugin before ebpf-sbr configured"
        }
        _ => "",
    }
}

impl Error {
    /// The CNI error to print.
    pub fn to_cni(&self) -> CniError {
        let code = match self {
            Error::Env(_) => ErrorCode::InvalidEnvironment,
            Error::Config(ConfigError::Decode { .. }) => ErrorCode::DecodingFailure,
            Error::Config(ConfigError::Invalid(_)) => ErrorCode::InvalidNetworkConfig,
            Error::Config(ConfigError::Version(_)) => ErrorCode::IncompatibleVersion,
            Error::Netns(e) => netns_code(e),
            Error::Delegate(e) => delegate_code(e),
            Error::Delegates(list) => list
                .first()
                .map(delegate_code)
                .unwrap_or(ErrorCode::DELEGATE_FAILED),
            Error::RolledBack { source, .. } => return self.with_rollback(source.to_cni()),
            Error::Cache(_) => ErrorCode::IoFailure,
            Error::Lock(LockError::Timeout(..)) => ErrorCode::TryAgainLater,
            Error::Lock(_) => ErrorCode::IoFailure,
            Error::NotReady { code, .. } => *code,
            Error::UnknownContainer(_) => ErrorCode::UnknownContainer,
            Error::AlreadyAdded(_) => ErrorCode::ALREADY_ADDED,
            Error::Kube(e) => kube_code(e),
            Error::Resolve(ResolveError::Kube(e)) => kube_code(e),
            Error::Resolve(ResolveError::Io(..)) => ErrorCode::IoFailure,
            Error::Resolve(ResolveError::Config(ConfigError::Decode { .. })) => {
                ErrorCode::DecodingFailure
            }
            Error::Resolve(_) => ErrorCode::InvalidNetworkConfig,
            Error::Annotation(_) => ErrorCode::InvalidNetworkConfig,
            Error::Netlink(_) => ErrorCode::NETLINK,
            Error::Device(DeviceError::Unavailable(_)) => ErrorCode::TryAgainLater,
            Error::Device(_) => ErrorCode::InvalidNetworkConfig,
            Error::DevInfo(DevInfoError::Io { .. } | DevInfoError::Symlink { .. }) => {
                ErrorCode::IoFailure
            }
            Error::DevInfo(_) => ErrorCode::InvalidNetworkConfig,
            Error::Sbr(e) => sbr_code(e),
            Error::Cni(e) => return e.clone(),
        };
        let details = match self {
            Error::Delegate(DelegateError {
                source: ExecError::Plugin(inner),
                ..
            }) => inner.details.clone(),
            Error::Sbr(e) => sbr_advice(e).to_string(),
            Error::AlreadyAdded(_) => {
                "nothing was changed: the container's attachments are as they were".into()
            }
            Error::Netns(NetnsError::NodeMountNs(_)) => NODE_MOUNT_NS_ADVICE.to_string(),
            _ => String::new(),
        };
        CniError::new(code, self.to_string()).with_details(details)
    }

    fn with_rollback(&self, mut e: CniError) -> CniError {
        if let Error::RolledBack { rollback, .. } = self {
            let undo = if rollback.is_empty() {
                "everything it had done was rolled back".to_string()
            } else {
                format!("rollback was incomplete: {}", rollback.join("; "))
            };
            e.details = if e.details.is_empty() {
                undo
            } else {
                format!("{}; {undo}", e.details)
            };
        }
        e
    }
}

impl From<Error> for CniError {
    fn from(e: Error) -> Self {
        e.to_cni()
    }
}
