//! ADD: validate everything, cache the plan, run the delegates in order, then make the pod's
//! default routes what was asked and write network-status; roll back on any failure.

use std::{collections::HashMap, time::Instant};

use serde_json::Value;

use crate::{
    cni::{env::EnvError, result::CniResult, CniError, ErrorCode},
    delegate::{
        self,
        cache::{CacheEntry, CACHE_FORMAT},
        lock::ContainerLock,
        Attachment, Context,
    },
    error::Error,
    kube::{
        annotations::NETWORK_STATUS,
        client::KubeClient,
        status::{self, LinkFacts},
    },
    netns::{netlink, NetNs},
};

use super::{devices, plan, readiness, Call};

pub(super) fn run(call: &Call<'_>) -> Result<Value, Error> {
    let req = call.req;
    let netns_path = req.netns.as_deref().ok_or(EnvError::Missing("CNI_NETNS"))?;
    let netns = NetNs::open(netns_path)?;
    readiness::wait(call.conf)?;
    let kube = call.kube()?;
    let mut plan = plan::build(
        call,
        kube.as_ref(),
        Instant::now() + call.conf.api_deadline(),
    )?;
    for a in &plan.attachments {
        delegate::resolve_binaries(a, &call.path)?;
    }
    devices::prepare_info_files(call, &mut plan.attachments)?;
    let lock = call.lock(&req.container_id)?;
    let mut entry = CacheEntry {
        format: CACHE_FORMAT,
        container_id: req.container_id.clone(),
        netns: Some(netns_path.to_path_buf()),
        ifname: req.ifname.clone(),
        cni_version: call.version.to_string(),
        cni_args: req.args.to_string(),
        pod: plan.pod.clone(),
        attachments: plan.attachments,
        created_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default(),
        extra: Default::default(),
    };
    call.cache.write(&entry)?;
    let ctx = call.context(&req.container_id, Some(netns_path));
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
    let finished = finish(
        call,
        &netns,
        &entry,
        kube.as_ref().filter(|_| plan.pod_found),
    )
    .and_then(|_| call.cache.write(&entry).map_err(Error::from));
    if let Err(e) = finished {
        return Err(rollback(call, &ctx, &entry.attachments, &lock, e));
    }
    let master = entry
        .attachments
        .iter()
        .find(|a| a.master)
        .and_then(|a| a.result.as_ref());
    let result = master
        .cloned()
        .unwrap_or_else(|| CniResult::default().to_json(call.version));
    CniResult::convert(&result, call.version).map_err(|e| {
        Error::Cni(CniError::new(
            ErrorCode::DecodingFailure,
            format!("master delegate result: {e}"),
        ))
    })
}

/// After the delegates: the requested default routes, then network-status (when the pod exists).
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
    if routes.is_empty() && kube.is_none() {
        return Ok(());
    }
    let facts = netns
        .netlink(|handle| async move {
            let links = netlink::links(&handle)
                .await
                .map_err(|e| format!("cannot list the pod's links: {e}"))?;
            for (ifname, gw) in &routes {
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
        .map_err(Error::Netlink)?;
    let (Some(kube), Some(pod)) = (kube, entry.pod.as_ref()) else {
        return Ok(());
    };
    let statuses = network_status(call, entry, &facts);
    let value = serde_json::to_string(&statuses).unwrap_or_default();
    let deadline = Instant::now() + call.conf.api_deadline();
    if !kube.patch_pod_annotations(
        &pod.namespace,
        &pod.name,
        &[(NETWORK_STATUS, Some(value))],
        deadline,
    )? {
        tracing::warn!(pod = %format!("{}/{}", pod.namespace, pod.name), "pod deleted meanwhile; network-status not written");
    }
    Ok(())
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
        let info = devices::info(call, a);
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
    devices::remove_info_files(call, &call.req.container_id, done);
    if let Err(e) = call.cache.remove(&call.req.container_id) {
        failures.push(e.to_string());
    }
    Error::RolledBack {
        source: Box::new(cause),
        rollback: failures,
    }
}
