//! The multus meta-plugin: for each command, plan the attachments, run the delegates, keep the
//! cache, and answer in the version the runtime asked for.

mod add;
pub mod aux_chain;
mod check;
mod del;
mod gc;
pub mod plan;
mod readiness;
mod repeat;
mod status;

use std::{path::Path, path::PathBuf, time::Duration};

use serde_json::Value;

use crate::{
    cni::{runner::Plugin, CniArgs, CniError, CniVersion, Command, ContainerId, IfName, Request},
    config::MultusConf,
    delegate::{
        cache::{Cache, CacheEntry, CacheError, Origin},
        lock::ContainerLock,
        reference::RequestView,
        Context,
    },
    error::Error,
    fault::{self, Step},
    logging,
    netns::NetNs,
};

/// Default deadline of one delegate call.
const DEFAULT_DELEGATE_TIMEOUT: Duration = Duration::from_secs(60);

/// The `multus` plugin.
#[derive(Debug, Default)]
pub struct MultusPlugin;

impl Plugin for MultusPlugin {
    fn name(&self) -> &'static str {
        "multus"
    }

    fn handle(&self, request: &Request, stdin: &[u8]) -> Result<Option<Value>, CniError> {
        let (conf, ignored) = parse_conf(request.command, stdin)?;
        fault::point(fault::command_step(request.command, Step::ConfigRead));
        let level = conf.log_level().map_err(Error::from)?;
        let rotation = logging::Rotation::from_options(conf.log_options.as_ref());
        let log_file = conf.log_file.as_deref().map(|path| logging::LogFile {
            path,
            rotation: &rotation,
        });
        logging::init(level, log_file, conf.log_to_stderr.unwrap_or(true));
        logging::report_ignored("multus", request.command.as_str(), &ignored);
        run_command(request, &conf)
    }
}

/// Parses the configuration for `command`, as every front end does (the thin binary, the daemon,
/// the shim's DEL without the daemon). DEL and GC run whatever a key that changes nothing they
/// tear down says (a typo in "logLevel" must not leave a pod's leases behind): the keys they
/// ignored are returned for the log; the other commands refuse them.
pub fn parse_conf(command: Command, stdin: &[u8]) -> Result<(MultusConf, Vec<String>), Error> {
    Ok(match command {
        Command::Del | Command::Gc => MultusConf::parse_for_teardown(stdin)?,
        _ => (MultusConf::parse(stdin)?, Vec::new()),
    })
}

/// Runs one command of a parsed configuration: the thin binary (after it set up logging) and the
/// daemon (which set up logging once at start) both come here. Everything the call depends on
/// comes from `request` and `conf`, nothing from the process environment.
pub fn run_command(request: &Request, conf: &MultusConf) -> Result<Option<Value>, CniError> {
    run_command_with(request, conf, &Services::default())
}

/// What a long-lived front end (the daemon) lends to the calls it runs.
#[derive(Clone, Default)]
pub struct Services {
    /// The process's API client and watch caches.
    pub kube: Option<SharedKube>,
}

/// A long-lived process's Kubernetes client.
#[derive(Clone)]
pub struct SharedKube {
    /// The client (its connections are kept between calls).
    pub client: ::kube::Client,
    /// The runtime the client's connections live on.
    pub handle: tokio::runtime::Handle,
    /// Watch caches consulted before a GET.
    pub cache: Option<std::sync::Arc<dyn crate::kube::client::ObjectCache>>,
}

/// [`run_command`] with the front end's `services`.
pub fn run_command_with(
    request: &Request,
    conf: &MultusConf,
    services: &Services,
) -> Result<Option<Value>, CniError> {
    let mut call = Call::new(request, conf)?;
    call.services = services.clone();
    let started = std::time::Instant::now();
    let outcome = match request.command {
        Command::Add => add::run(&call).map(Some),
        Command::Del => del::run(&call).map(|_| None),
        Command::Check => check::run(&call).map(|_| None),
        Command::Status => status::run(&call).map(|_| None),
        Command::Gc => gc::run(&call).map(|_| None),
        Command::Version => Ok(None),
    };
    match &outcome {
        Ok(_) => {
            tracing::info!(command = %request.command, container = %request.container_label(), elapsed = ?started.elapsed(), "done")
        }
        Err(e) => {
            tracing::error!(command = %request.command, container = %request.container_label(), "{e}")
        }
    }
    outcome.map_err(CniError::from)
}

/// Everything one invocation needs.
pub struct Call<'a> {
    /// The request.
    pub req: &'a Request,
    /// The configuration.
    pub conf: &'a MultusConf,
    /// The version the runtime asked for.
    pub version: CniVersion,
    /// Plugin search path (binDir, then CNI_PATH).
    pub path: Vec<PathBuf>,
    /// The delegate cache.
    pub cache: Cache,
    /// Deadline of each delegate call.
    pub timeout: Duration,
    /// What the front end lends (the daemon's API client and caches).
    pub services: Services,
}

impl<'a> Call<'a> {
    fn new(req: &'a Request, conf: &'a MultusConf) -> Result<Self, Error> {
        Ok(Call {
            req,
            conf,
            version: conf.version()?,
            path: conf.search_path(&req.path),
            cache: Cache::new(&conf.cni_dir),
            timeout: conf
                .delegate_timeout_seconds
                .map(Duration::from_secs)
                .unwrap_or(DEFAULT_DELEGATE_TIMEOUT),
            services: Services::default(),
        })
    }

    /// The delegate context for a container.
    pub fn context<'b>(
        &'b self,
        container_id: Option<&'b ContainerId>,
        netns: Option<&'b Path>,
    ) -> Context<'b> {
        Context {
            container_id,
            netns,
            path: &self.path,
            default_version: self.version,
            timeout: self.timeout,
        }
    }

    /// A Kubernetes client, when the configuration gives API access and the runtime named a pod.
    pub fn kube(&self) -> Result<Option<crate::kube::client::KubeClient>, Error> {
        if crate::kube::PodIdentity::from_args(&self.req.args).is_none() {
            return Ok(None);
        }
        if let Some(k) = &self.services.kube {
            return Ok(Some(crate::kube::client::KubeClient::shared(
                k.client.clone(),
                k.handle.clone(),
                k.cache.clone(),
            )));
        }
        Ok(crate::kube::client::KubeClient::connect(
            self.conf.kubeconfig.as_deref(),
        )?)
    }

    /// Reads a container's cache entry. A file of the reference Multus is converted for this
    /// call's request when `for_request` (DEL and CHECK: the reference took the first delegate's
    /// interface, CNI_ARGS and runtime config from it), else from what libcni recorded at ADD; its
    /// device attachments get the device-info path the reference gives them.
    pub fn read_cache(
        &self,
        container_id: &ContainerId,
        for_request: bool,
    ) -> Result<Option<CacheEntry>, CacheError> {
        let args = self.req.args.to_string();
        let view = RequestView {
            ifname: self.req.iface.as_ref().map_or("", |i| i.as_str()),
            cni_args: &args,
            netns: self.req.netns.as_deref(),
            runtime_config: &self.conf.runtime_config,
            cni_version: self.version.as_str(),
        };
        let mut entry = self
            .cache
            .read_for(container_id, for_request.then_some(&view))?;
        if let Some(e) = entry.as_mut().filter(|e| e.origin != Origin::Ours) {
            crate::devices::inject::add_info_paths(self.conf, container_id, &mut e.attachments);
        }
        Ok(entry)
    }

    /// Locks a container (waits up to twice the delegate deadline for concurrent calls).
    pub fn lock(&self, container_id: &ContainerId) -> Result<ContainerLock, Error> {
        Ok(ContainerLock::acquire(
            &self.conf.cni_dir,
            container_id,
            self.timeout * 2,
        )?)
    }
}

/// What [`release_cached`] did.
#[derive(Debug)]
pub enum Released {
    /// The entry was torn down.
    TornDown,
    /// The container has no cache entry (any more).
    NoEntry,
    /// The entry read under the lock no longer satisfied the condition: nothing was done.
    Kept,
}

/// Deletes the cached attachments of `container_id` exactly as DEL does (for `multusctl gc`):
/// under the container's lock, every delegate of the cache entry is deleted in reverse order with
/// the entry's CNI version, the namespace recorded at ADD is passed only while it still exists,
/// device-info files go, and the cache entry is removed (kept when a delegate fails and
/// `retryDeleteOnError` is set). `cni_path` is searched after the configuration's `binDir`.
///
/// `still_garbage` is asked again about the entry read under the lock, so that a decision made
/// on an earlier, unlocked read (the namespace is gone) is not acted on when a concurrent call
/// changed the entry meanwhile. Without an entry nothing is done: unlike DEL, there is no
/// fallback to the configuration.
pub fn release_cached(
    conf: &MultusConf,
    container_id: &ContainerId,
    cni_path: &[PathBuf],
    still_garbage: &dyn Fn(&CacheEntry) -> bool,
) -> Result<Released, Error> {
    let Some(entry) = Cache::new(&conf.cni_dir).read(container_id)? else {
        return Ok(Released::NoEntry);
    };
    let mut conf = conf.clone();
    if !entry.cni_version.is_empty() {
        conf.cni_version = Some(entry.cni_version.clone());
    }
    let req = Request {
        command: Command::Del,
        container: Some(container_id.clone()),
        netns: entry.netns.clone(),
        iface: IfName::parse(&entry.ifname).ok(),
        args: CniArgs::parse(&entry.cni_args).unwrap_or_default(),
        path: cni_path.to_vec(),
    };
    let call = Call::new(&req, &conf)?;
    del::release_cached(&call, container_id, still_garbage)
}

/// A netns path usable by delegates during teardown: `None` when it is gone or not a namespace
/// (plugins then release what they hold outside the container, as the spec allows).
pub fn usable_netns(path: Option<&Path>) -> Option<&Path> {
    let p = path?;
    match NetNs::open(p) {
        Ok(_) => Some(p),
        Err(e) => {
            tracing::info!("{e}; tearing down without the namespace");
            None
        }
    }
}
