//! Delegation: running the delegate networks' plugins as the CNI spec prescribes, the cache that
//! lets DEL work without the Kubernetes API, and the per-container lock.

pub mod cache;
pub mod exec;
pub mod lock;
pub mod reference;

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{
    cni::{result::CniResult, CniError, CniVersion, Command},
    config::{netconf::ValidAttachment, NetworkConfig},
    fault,
};
pub use exec::ExecError;

/// One network attached to the container: a delegate network, its interface name inside the
/// container, and what is passed to it. This is also what the cache records.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Attachment {
    /// Network name as reported (`namespace/name` for a NAD, the conf name otherwise).
    pub name: String,
    /// Interface name inside the container.
    pub ifname: String,
    /// The master (cluster network): its result is multus's result.
    #[serde(default)]
    pub master: bool,
    /// The delegate network configuration (lossless).
    pub network: NetworkConfig,
    /// Runtime configuration offered to this attachment; each plugin gets only the keys of the
    /// capabilities it declares.
    #[serde(
        rename = "runtimeConfig",
        default,
        skip_serializing_if = "Map::is_empty"
    )]
    pub runtime_config: Map<String, Value>,
    /// Merged into each plugin's `args` (for example `{"cni": {...}}` from `cni-args`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Value>,
    /// `CNI_ARGS` for this attachment's plugins.
    #[serde(rename = "cniArgs", default)]
    pub cni_args: String,
    /// The result of ADD, once it succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// Gateways the pod's default route(s) must use through this attachment (`default-route`).
    #[serde(
        rename = "defaultRoute",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub default_route: Vec<std::net::IpAddr>,
    /// Whether network-status marks this attachment as carrying the default route.
    #[serde(rename = "isDefault", default)]
    pub is_default: bool,
    /// Device-plugin resource of the NAD (`k8s.v1.cni.cncf.io/resourceName`).
    #[serde(
        rename = "resourceName",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub resource_name: Option<String>,
    /// The device given to this attachment.
    #[serde(rename = "deviceID", default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// The auxiliary CNI chain (`auxiliaryCNIChainName`), not a network of the pod.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub auxiliary: bool,
    /// Keys written by other versions of this implementation (kept).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Attachment {
    /// A new attachment of `network` as `ifname`.
    pub fn new(
        name: impl Into<String>,
        ifname: impl Into<String>,
        network: NetworkConfig,
        cni_args: impl Into<String>,
    ) -> Self {
        Attachment {
            name: name.into(),
            ifname: ifname.into(),
            master: false,
            network,
            runtime_config: Map::new(),
            args: None,
            cni_args: cni_args.into(),
            result: None,
            default_route: Vec::new(),
            is_default: false,
            resource_name: None,
            device_id: None,
            auxiliary: false,
            extra: Map::new(),
        }
    }
}

/// Where and how the delegates of one container run.
#[derive(Clone, Debug)]
pub struct Context<'a> {
    /// Container id.
    pub container_id: Option<&'a crate::cni::ContainerId>,
    /// Network namespace (None: unknown or gone, DEL only).
    pub netns: Option<&'a Path>,
    /// Plugin search path (binDir, then CNI_PATH); also the delegates' CNI_PATH.
    pub path: &'a [PathBuf],
    /// Version for delegate confs that declare none.
    pub default_version: CniVersion,
    /// Deadline of each plugin call.
    pub timeout: Duration,
}

/// A delegate plugin failed.
#[derive(Debug, thiserror::Error)]
#[error("delegate network {} (plugin {plugin}, interface {ifname}) failed on {command}: {source}", crate::explain::quote(.network))]
pub struct DelegateError {
    /// The network name.
    pub network: String,
    /// The plugin type that failed.
    pub plugin: String,
    /// The interface.
    pub ifname: String,
    /// The command.
    pub command: Command,
    /// What happened.
    #[source]
    pub source: ExecError,
}

impl DelegateError {
    fn new(att: &Attachment, plugin: &str, command: Command, source: ExecError) -> Self {
        DelegateError {
            network: att.name.clone(),
            plugin: plugin.to_string(),
            ifname: att.ifname.clone(),
            command,
            source,
        }
    }
}

/// The plugin type answered by multus itself: Multus's `passthru` plugin, which starts the
/// auxiliary CNI chain with an empty result (ADD) and does nothing otherwise. Built in, so the
/// chain works without that binary on the node.
pub const PASSTHRU: &str = "passthru";

/// Checks that every plugin binary of the attachment is found, so ADD can refuse before changing
/// anything.
pub fn resolve_binaries(att: &Attachment, path: &[PathBuf]) -> Result<(), DelegateError> {
    att.network
        .plugin_types()
        .into_iter()
        .filter(|t| *t != PASSTHRU && exec::in_process(t).is_none())
        .try_for_each(|t| {
            exec::find_plugin(t, path)
                .map(drop)
                .map_err(|e| DelegateError::new(att, t, Command::Add, e))
        })
}

/// The version the attachment's network speaks.
pub fn network_version(att: &Attachment, ctx: &Context<'_>) -> CniVersion {
    att.network
        .cni_version(ctx.default_version)
        .unwrap_or(ctx.default_version)
}

/// Builds the stdin config of one plugin of the attachment (libcni's buildOneConfig).
fn plugin_config(
    att: &Attachment,
    plugin: &Map<String, Value>,
    version: CniVersion,
    prev: Option<&Value>,
) -> Value {
    let mut conf = plugin.clone();
    if att.network.is_list() {
        if let Some(name) = att.network.name() {
            conf.insert("name".into(), Value::from(name));
        }
    }
    conf.insert("cniVersion".into(), Value::from(version.as_str()));
    conf.remove("cniVersions");
    let mut rc = Map::new();
    if let Some(caps) = plugin.get("capabilities").and_then(Value::as_object) {
        for (cap, enabled) in caps {
            if enabled.as_bool() == Some(true) {
                if let Some(v) = att.runtime_config.get(cap) {
                    rc.insert(cap.clone(), v.clone());
                }
            }
        }
    }
    if !rc.is_empty() {
        conf.insert("runtimeConfig".into(), Value::Object(rc));
    }
    if let Some(Value::Object(extra)) = &att.args {
        let args = conf
            .entry("args")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(args) = args {
            for (k, v) in extra {
                match (args.get_mut(k), v) {
                    (Some(Value::Object(have)), Value::Object(add)) => {
                        have.extend(add.iter().map(|(a, b)| (a.clone(), b.clone())));
                    }
                    _ => {
                        args.insert(k.clone(), v.clone());
                    }
                }
            }
        }
    }
    if let Some(prev) = prev {
        let prev = CniResult::convert(prev, version).unwrap_or_else(|_| prev.clone());
        conf.insert("prevResult".into(), prev);
    }
    Value::Object(conf)
}

/// Runs one plugin of an attachment, between its crash-test steps ([`fault::command_step`]).
fn invoke(
    att: &Attachment,
    ctx: &Context<'_>,
    command: Command,
    plugin: &Map<String, Value>,
    version: CniVersion,
    conf: &Value,
) -> Result<Vec<u8>, DelegateError> {
    fault::point(fault::command_step(command, fault::Step::DelegateStart));
    let out = invoke_plugin(att, ctx, command, plugin, version, conf);
    fault::point(fault::command_step(command, fault::Step::DelegateEnd));
    out
}

fn invoke_plugin(
    att: &Attachment,
    ctx: &Context<'_>,
    command: Command,
    plugin: &Map<String, Value>,
    version: CniVersion,
    conf: &Value,
) -> Result<Vec<u8>, DelegateError> {
    let ty = plugin
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if ty == PASSTHRU {
        tracing::debug!(network = %att.name, plugin = ty, %command, "built-in plugin");
        return Ok(passthru(command, version));
    }
    let per_container = command.is_per_container();
    if let Some(plugin) = exec::in_process(ty) {
        return run_in_process(plugin, att, ctx, command, ty, conf);
    }
    let binary =
        exec::find_plugin(ty, ctx.path).map_err(|e| DelegateError::new(att, ty, command, e))?;
    let inv = exec::Invocation {
        command,
        container_id: ctx.container_id.map_or("", |c| c.as_str()),
        netns: ctx.netns,
        ifname: if per_container { &att.ifname } else { "" },
        args: &att.cni_args,
        path: ctx.path,
        timeout: ctx.timeout,
    };
    let stdin = serde_json::to_vec(conf).unwrap_or_default();
    tracing::debug!(network = %att.name, plugin = ty, %command, ifname = %att.ifname, "calling delegate");
    let started = std::time::Instant::now();
    let out =
        exec::exec(&binary, &inv, &stdin).map_err(|e| DelegateError::new(att, ty, command, e));
    exec::observe(ty, command, started.elapsed());
    tracing::debug!(network = %att.name, plugin = ty, %command, elapsed_us = started.elapsed().as_micros() as u64, "delegate returned");
    out
}

/// Runs a plugin registered with [`exec::set_in_process`] with the request a child would get
/// in its environment; its answer is what the child would have printed.
fn run_in_process(
    plugin: &(dyn crate::cni::runner::Plugin + Send + Sync),
    att: &Attachment,
    ctx: &Context<'_>,
    command: Command,
    ty: &str,
    conf: &Value,
) -> Result<Vec<u8>, DelegateError> {
    let per_container = command.is_per_container();
    let request = crate::cni::Request {
        command,
        container: ctx.container_id.cloned(),
        netns: ctx.netns.map(Path::to_path_buf),
        iface: per_container
            .then(|| crate::cni::IfName::parse(&att.ifname).ok())
            .flatten(),
        args: crate::cni::CniArgs::parse(&att.cni_args).unwrap_or_default(),
        path: ctx.path.to_vec(),
    };
    let stdin = serde_json::to_vec(conf).unwrap_or_default();
    let started = std::time::Instant::now();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        plugin.handle(&request, &stdin)
    }))
    .unwrap_or_else(|_| {
        Err(CniError::new(
            crate::cni::ErrorCode::Plugin(999),
            format!("internal error: the in-process {ty} panicked"),
        ))
    });
    exec::observe(ty, command, started.elapsed());
    tracing::debug!(network = %att.name, plugin = ty, %command, elapsed_us = started.elapsed().as_micros() as u64, "delegate returned (in-process)");
    match outcome {
        Ok(Some(v)) => Ok(serde_json::to_vec(&v).unwrap_or_default()),
        Ok(None) => Ok(Vec::new()),
        Err(e) => Err(DelegateError::new(
            att,
            ty,
            command,
            exec::ExecError::Plugin(e),
        )),
    }
}

/// What [`PASSTHRU`] answers: an empty result in the network's version on ADD, nothing otherwise.
fn passthru(command: Command, version: CniVersion) -> Vec<u8> {
    if command != Command::Add {
        return Vec::new();
    }
    serde_json::to_vec(&CniResult::default().to_json(version)).unwrap_or_default()
}

/// ADD: runs the plugins in order, each getting the previous one's result; returns the last result.
pub fn add(att: &Attachment, ctx: &Context<'_>) -> Result<Value, DelegateError> {
    let version = network_version(att, ctx);
    let mut prev: Option<Value> = None;
    for plugin in att.network.plugins() {
        let ty = plugin
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let conf = plugin_config(att, plugin, version, prev.as_ref());
        let out = invoke(att, ctx, Command::Add, plugin, version, &conf)?;
        let bad = |why: String| {
            DelegateError::new(
                att,
                &ty,
                Command::Add,
                ExecError::BadOutput(PathBuf::from(&ty), why),
            )
        };
        let result: Value =
            crate::explain::from_bytes(&out).map_err(|e| bad(format!("not JSON: {e}")))?;
        CniResult::parse(&result).map_err(|e| bad(e.to_string()))?;
        prev = Some(result);
    }
    prev.ok_or_else(|| {
        DelegateError::new(
            att,
            "",
            Command::Add,
            ExecError::BadOutput(PathBuf::new(), "no plugins".into()),
        )
    })
}

/// DEL: runs the plugins in reverse with the cached result; every plugin is attempted, and all
/// failures are returned.
pub fn del(att: &Attachment, ctx: &Context<'_>) -> Result<(), Vec<DelegateError>> {
    let version = network_version(att, ctx);
    let prev = if version >= CniVersion::V0_4_0 {
        att.result.as_ref()
    } else {
        None
    };
    let mut errors = Vec::new();
    for plugin in att.network.plugins().into_iter().rev() {
        let conf = plugin_config(att, plugin, version, prev);
        if let Err(e) = invoke(att, ctx, Command::Del, plugin, version, &conf) {
            errors.push(e);
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// CHECK: runs the plugins in order with the cached result; stops at the first failure. Networks
/// older than 0.4.0 (no CHECK) and those with `disableCheck` are skipped.
pub fn check(att: &Attachment, ctx: &Context<'_>) -> Result<(), DelegateError> {
    let version = network_version(att, ctx);
    if !version.supports_check() || att.network.disable_check() {
        return Ok(());
    }
    for plugin in att.network.plugins() {
        let conf = plugin_config(att, plugin, version, att.result.as_ref());
        invoke(att, ctx, Command::Check, plugin, version, &conf)?;
    }
    Ok(())
}

/// GC: forwards the valid attachments of this network to each of its plugins (1.1.0 networks
/// only; `disableGC` honoured). Continues past failures.
pub fn gc(
    att: &Attachment,
    ctx: &Context<'_>,
    valid: &[ValidAttachment],
) -> Result<(), Vec<DelegateError>> {
    let version = network_version(att, ctx);
    if !version.supports_status_gc() || att.network.disable_gc() {
        return Ok(());
    }
    let mut errors = Vec::new();
    for plugin in att.network.plugins() {
        let mut conf = plugin_config(att, plugin, version, None);
        if let Value::Object(m) = &mut conf {
            m.insert(
                "cni.dev/valid-attachments".into(),
                serde_json::to_value(valid).unwrap_or_default(),
            );
        }
        if let Err(e) = invoke(att, ctx, Command::Gc, plugin, version, &conf) {
            errors.push(e);
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// STATUS: asks each plugin of a 1.1.0 network whether it is ready.
pub fn status(att: &Attachment, ctx: &Context<'_>) -> Result<(), DelegateError> {
    let version = network_version(att, ctx);
    if !version.supports_status_gc() {
        return Ok(());
    }
    for plugin in att.network.plugins() {
        let conf = plugin_config(att, plugin, version, None);
        invoke(att, ctx, Command::Status, plugin, version, &conf)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn att(v: Value) -> Attachment {
        Attachment::new("n", "net1", NetworkConfig::from_value(v, "t").unwrap(), "")
    }

    #[test]
    fn runtime_config_only_for_declared_capabilities() {
        let mut a = att(json!({"name": "l", "cniVersion": "1.0.0", "plugins": [
            {"type": "bridge"}, {"type": "portmap", "capabilities": {"portMappings": true}}]}));
        a.runtime_config
            .insert("portMappings".into(), json!([{"hostPort": 80}]));
        a.runtime_config.insert("bandwidth".into(), json!({}));
        let plugins = a.network.plugins();
        let c0 = plugin_config(&a, plugins[0], CniVersion::V1_0_0, None);
        let c1 = plugin_config(
            &a,
            plugins[1],
            CniVersion::V1_0_0,
            Some(&json!({"cniVersion": "1.0.0"})),
        );
        assert!(c0.get("runtimeConfig").is_none());
        assert_eq!(
            c1["runtimeConfig"],
            json!({"portMappings": [{"hostPort": 80}]})
        );
        assert_eq!(c1["name"], "l");
        assert_eq!(c1["prevResult"]["cniVersion"], "1.0.0");
    }

    #[test]
    fn args_are_merged() {
        let mut a = att(json!({"type": "x", "args": {"cni": {"a": 1}}}));
        a.args = Some(json!({"cni": {"b": 2}}));
        let c = plugin_config(&a, a.network.plugins()[0], CniVersion::V0_3_1, None);
        assert_eq!(c["args"]["cni"], json!({"a": 1, "b": 2}));
    }

    #[test]
    fn prev_result_is_converted_to_the_network_version() {
        let a = att(json!({"type": "x", "cniVersion": "0.4.0"}));
        let prev = json!({"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.2/24"}]});
        let c = plugin_config(&a, a.network.plugins()[0], CniVersion::V0_4_0, Some(&prev));
        assert_eq!(c["prevResult"]["cniVersion"], "0.4.0");
        assert_eq!(c["prevResult"]["ips"][0]["version"], "4");
    }
}
