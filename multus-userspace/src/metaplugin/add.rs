//! ADD: validate everything, settle a repeated ADD under the lock ([`super::repeat`]), cache the
//! plan, run the delegates in order, then make the pod's default routes what was asked and write
//! network-status; roll back what this call did on any failure. Then, best-effort, the pod's
//! events: `AddedInterface` per attachment, or a Warning.

use std::{collections::HashMap, path::Path, time::Instant};

use k8s_openapi::jiff::Timestamp;
use serde_json::Value;

use crate::{
    cni::{env::EnvError, result::CniResult, CniError, ErrorCode},
    delegate::{
        self,
        cache::{AddState, CacheEntry, CACHE_FORMAT},
        lock::ContainerLock,
        Attachment, Context,
    },
    devices::inject,
    error::Error,
    fault,
    kube::{
        annotations::NETWORK_STATUS,
        client::KubeClient,
        events::{self, PodEvent},
        resolve::ResolveError,
        status::{self, LinkFacts},
        PodIdentity,
    },
    netns::{netlink, NetNs},
    sbrplugin::chain,
};

use super::{
    plan, readiness,
    repeat::{self, Earlier},
    Call,
};

pub(super) fn run(call: &Call<'_>) -> Result<Value, Error> {
    let req = call.req;
    let netns_path = req.netns.as_deref().ok_or(EnvError::Missing("CNI_NETNS"))?;
    let netns = NetNs::open(netns_path)?;
    readiness::wait(call.conf)?;
    let kube = call.kube()?;
    let mut pod_found = None;
    let outcome = add(call, netns_path, &netns, kube.as_ref(), &mut pod_found);
    if let (Some(kube), Some(pod)) = (kube.as_ref(), PodIdentity::from_args(&req.args)) {
        let events = match &outcome {
            Ok((_, entry)) if pod_found == Some(true) => added_events(entry),
            Err(e) if pod_found != Some(false) => failure_event(e).into_iter().collect(),
            _ => Vec::new(),
        };
        let pod = match outcome.as_ref().ok().and_then(|(_, e)| e.pod.as_ref()) {
            Some(found) => PodIdentity {
                namespace: found.namespace.clone(),
                name: found.name.clone(),
                uid: found.uid.clone(),
            },
            None => pod,
        };
        record_events(
            kube,
            &pod,
            &events,
            Instant::now() + call.conf.api_deadline(),
        );
    }
    outcome.map(|(result, _)| result)
}

/// ADD after the environment checks: returns the result and the cache entry it recorded.
/// `pod_found` learns whether the API knows the pod, once the plan has asked.
fn add(
    call: &Call<'_>,
    netns_path: &Path,
    netns: &NetNs,
    kube: Option<&KubeClient>,
    pod_found: &mut Option<bool>,
) -> Result<(Value, CacheEntry), Error> {
    let req = call.req;
    let id = req.container_id()?;
    let mut plan = plan::build(call, kube, Instant::now() + call.conf.api_deadline())?;
    *pod_found = Some(plan.pod_found);
    for a in &plan.attachments {
        delegate::resolve_binaries(a, &call.path)?;
    }
    inject::plan_info_files(call.conf, id, &mut plan.attachments)?;
    fault::point("add.planned");
    let lock = call.lock(id)?;
    let mut entry = CacheEntry {
        format: CACHE_FORMAT,
        container_id: id.clone(),
        netns: Some(netns_path.to_path_buf()),
        ifname: req.ifname()?.to_string(),
        cni_version: call.version.to_string(),
        cni_args: req.args.to_string(),
        pod: plan.pod.clone(),
        attachments: plan.attachments,
        created_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default(),
        add_state: Some(AddState::Adding),
        extra: Default::default(),
        origin: Default::default(),
    };
    // Before anything is written: a repeated ADD never touches what an earlier one made.
    match repeat::decide(call.cache.read(id), &entry) {
        Earlier::None => {}
        Earlier::Same(earlier) => {
            tracing::info!(container = %id, "already added with the same plan: the cached result is returned");
            // Nothing was added by this call: no AddedInterface events.
            *pod_found = None;
            return master_result(call, &earlier).map(|result| (result, *earlier));
        }
        Earlier::Refused(why) => return Err(Error::AlreadyAdded(why)),
    }
    inject::prefill_info_files(call.conf, id, &entry.attachments)?;
    call.cache.write(&entry)?;
    fault::point("add.cache-written");
    let ctx = call.context(Some(id), Some(netns_path));
    for i in 0..entry.attachments.len() {
        match delegate::add(&entry.attachments[i], &ctx) {
            Ok(result) => entry.attachments[i].result = Some(result),
            Err(e) => {
                return Err(rollback(
                    call,
                    &ctx,
                    &entry.attachments[..=i],
                    &lock,
                    e.into(),
                ))
            }
        }
    }
    entry.add_state = Some(AddState::Added);
    if let Err(e) = finish(call, netns, &entry, kube.filter(|_| plan.pod_found)) {
        return Err(rollback(call, &ctx, &entry.attachments, &lock, e));
    }
    master_result(call, &entry).map(|result| (result, entry))
}

/// The master's result from a completed entry, in the version the runtime asked for.
fn master_result(call: &Call<'_>, entry: &CacheEntry) -> Result<Value, Error> {
    let master = entry
        .attachments
        .iter()
        .find(|a| a.master)
        .and_then(|a| a.result.as_ref());
    let result = master
        .cloned()
        .unwrap_or_else(|| CniResult::default().to_json(call.version));
    let result = CniResult::convert(&result, call.version).map_err(|e| {
        Error::Cni(CniError::new(
            ErrorCode::DecodingFailure,
            format!("master delegate result: {e}"),
        ))
    })?;
    Ok(result)
}

/// One `AddedInterface` event per attachment whose result names an interface or an address,
/// as the reference sends them (the auxiliary chain's empty results get none).
fn added_events(entry: &CacheEntry) -> Vec<PodEvent> {
    entry
        .attachments
        .iter()
        .filter_map(|a| {
            let result = CniResult::parse(a.result.as_ref()?).ok()?;
            if result.interfaces.is_empty() && result.ips.is_empty() {
                return None;
            }
            let ips: Vec<String> = result.ips.iter().map(|ip| ip.address.to_string()).collect();
            Some(PodEvent::added_interface(&a.ifname, &ips, &a.name))
        })
        .collect()
}

/// The Warning of a failed ADD; none when the API itself failed (the event would not get
/// through either, and trying would hold the call for another deadline).
fn failure_event(e: &Error) -> Option<PodEvent> {
    let cause = match e {
        Error::RolledBack { source, .. } => source.as_ref(),
        other => other,
    };
    let reason = match cause {
        Error::Kube(_) | Error::Resolve(ResolveError::Kube(_)) => return None,
        Error::Resolve(ResolveError::NadNotFound(..)) => events::NO_NETWORK_FOUND,
        _ => events::FAILED_ADD_NETWORK,
    };
    Some(PodEvent::add_failed(reason, &e.to_cni().msg))
}

/// Sends `events` about `pod`, best-effort (the ADD's outcome never changes; see
/// [`KubeClient::record_events`]).
fn record_events(kube: &KubeClient, pod: &PodIdentity, events: &[PodEvent], deadline: Instant) {
    // Each its own time: the time names the event.
    let objects = events
        .iter()
        .map(|e| e.to_event(pod, Timestamp::now()))
        .collect();
    kube.record_events(&pod.to_string(), objects, deadline);
}

/// How long a failed ADD tries to retract a network-status write whose answer it did not get.
const STATUS_RETRACT_BOUND: std::time::Duration = std::time::Duration::from_secs(1);

/// After the delegates: the requested default routes, SBR's cover, the completed cache entry,
/// then network-status (when the pod exists).
fn finish(
    call: &Call<'_>,
    netns: &NetNs,
    entry: &CacheEntry,
    kube: Option<&KubeClient>,
) -> Result<(), Error> {
    let routes: Vec<(String, std::net::IpAddr)> = entry
        .attachments
        .iter()
        .flat_map(|a| a.default_route.iter().map(move |g| (a.ifname.clone(), *g)))
        .collect();
    let facts = if routes.is_empty() && kube.is_none() {
        None
    } else {
        Some(default_routes_and_links(netns, &routes)?)
    };
    fault::point("add.default-routes-set");
    // After the default routes: SBR follows the default route they leave.
    cover_sbr(entry, !routes.is_empty())?;
    fault::point("add.sbr-covered");
    // The entry is complete on disk before network-status tells the cluster: a failure to
    // write it (a full disk) is rolled back before anything was published.
    call.cache.write(entry)?;
    fault::point("add.cache-completed");
    let (Some(facts), Some(kube), Some(pod)) = (facts, kube, entry.pod.as_ref()) else {
        return Ok(());
    };
    let statuses = network_status(call, entry, &facts);
    let value = serde_json::to_string(&statuses).unwrap_or_default();
    let deadline = Instant::now() + call.conf.api_deadline();
    match kube.patch_pod_annotations(
        &pod.namespace,
        &pod.name,
        &[(NETWORK_STATUS, Some(value))],
        deadline,
    ) {
        Ok(true) => {}
        Ok(false) => {
            tracing::warn!(pod = %format!("{}/{}", pod.namespace, pod.name), "pod deleted meanwhile; network-status not written");
        }
        Err(e) => {
            // The write may have landed with its answer lost (a connection reset mid-answer):
            // remove it, best effort and briefly, so that the cluster is not told of the
            // interfaces the rollback is about to remove.
            let retract = Instant::now() + call.conf.api_deadline().min(STATUS_RETRACT_BOUND);
            if let Err(why) = kube.patch_pod_annotations(
                &pod.namespace,
                &pod.name,
                &[(NETWORK_STATUS, None)],
                retract,
            ) {
                tracing::warn!(pod = %format!("{}/{}", pod.namespace, pod.name), "network-status may be left from this failed ADD: {why}");
            }
            return Err(e.into());
        }
    }
    fault::point("add.network-status-written");
    Ok(())
}

/// Brings the SBR state that this ADD's `ebpf-sbr` chains made up to date with the pod as all
/// the delegates left it ([`chain::cover_after_delegates`]).
fn cover_sbr(entry: &CacheEntry, default_routes_changed: bool) -> Result<(), Error> {
    let Some(netns) = entry.netns.as_deref() else {
        return Ok(());
    };
    chain::cover_after_delegates(
        &entry.attachments,
        &entry.container_id,
        netns,
        default_routes_changed,
    )
}

/// Makes each requested default route the pod's only one for its family, and returns the pod's
/// links (MAC and MTU for network-status).
fn default_routes_and_links(
    netns: &NetNs,
    routes: &[(String, std::net::IpAddr)],
) -> Result<HashMap<String, LinkFacts>, Error> {
    netns
        .netlink(|handle| async move {
            let links = netlink::links(&handle)
                .await
                .map_err(|e| format!("cannot list the pod's links: {e}"))?;
            for (ifname, gw) in routes {
                let link = links.iter().find(|l| &l.name == ifname).ok_or_else(|| {
                    format!("default-route via {gw}: interface {ifname} does not exist in the pod")
                })?;
                netlink::set_only_default_route(&handle, *gw, link.index)
                    .await
                    .map_err(|e| {
                        format!("cannot set the default route via {gw} dev {ifname}: {e}")
                    })?;
            }
            Ok::<_, String>(
                links
                    .into_iter()
                    .map(|l| {
                        (
                            l.name.clone(),
                            LinkFacts {
                                mac: l.mac,
                                mtu: Some(l.mtu),
                            },
                        )
                    })
                    .collect::<HashMap<_, _>>(),
            )
        })?
        .map_err(Error::Netlink)
}

/// The network-status entries of every attachment.
pub(super) fn network_status(
    call: &Call<'_>,
    entry: &CacheEntry,
    facts: &HashMap<String, LinkFacts>,
) -> Vec<status::NetworkStatus> {
    let mut out = Vec::new();
    for a in &entry.attachments {
        let Some(result) = a.result.as_ref().and_then(|r| CniResult::parse(r).ok()) else {
            continue;
        };
        if a.auxiliary && result.interfaces.is_empty() && result.ips.is_empty() {
            // The auxiliary chain made no interface: nothing to report, as the reference does.
            continue;
        }
        let info = inject::info(call.conf, &entry.container_id, a);
        out.extend(status::entries(
            &a.name,
            &a.ifname,
            &result,
            a.is_default,
            facts,
            info.as_ref(),
        ));
    }
    out
}

/// Deletes `done` in reverse (the last one may be half-made), removes the cache, and wraps `cause`.
/// Everything it undoes was made by this call: an ADD for a container with a cache entry is decided
/// by [`repeat::decide`] before anything runs.
fn rollback(
    call: &Call<'_>,
    ctx: &Context<'_>,
    done: &[Attachment],
    _held: &ContainerLock,
    cause: Error,
) -> Error {
    tracing::warn!(
        "ADD failed, rolling back {} attachment(s): {cause}",
        done.len()
    );
    let mut failures = Vec::new();
    for a in done.iter().rev() {
        if let Err(errors) = delegate::del(a, ctx) {
            failures.extend(errors.iter().map(ToString::to_string));
        }
    }
    if let Some(id) = ctx.container_id {
        inject::remove_info_files(call.conf, id, done);
        if let Err(e) = call.cache.remove(id) {
            failures.push(e.to_string());
        }
    }
    Error::RolledBack {
        source: Box::new(cause),
        rollback: failures,
    }
}
