//! A repeated ADD: what ADD does when the container already has a cache entry. It is decided under
//! the container's lock, before any delegate runs or any file is written, so a second ADD can
//! never undo the attachments of a running container:
//!
//! | the cache entry | ADD |
//! |---|---|
//! | none | runs |
//! | a completed ADD with the same plan | returns that ADD's result; nothing runs |
//! | a completed ADD with another plan | refused: DEL first (or `multusctl repair` for SBR drift) |
//! | an ADD that never completed (crashed or killed) | refused: DEL cleans up what it left |
//! | unreadable (a torn write) | refused: DEL cleans up without it |

use crate::delegate::{
    cache::{CacheEntry, CacheError},
    Attachment,
};

/// What an earlier ADD of the container means for this one.
#[derive(Debug)]
pub(super) enum Earlier {
    /// Nothing is cached: this ADD runs.
    None,
    /// A completed ADD with the same plan: its entry (with the results) answers this ADD.
    Same(Box<CacheEntry>),
    /// This ADD must not run; the reason says what to do instead.
    Refused(String),
}

/// Decides from the cached entry (as read under the lock) and the entry this ADD planned.
pub(super) fn decide(
    cached: Result<Option<CacheEntry>, CacheError>,
    planned: &CacheEntry,
) -> Earlier {
    let id = &planned.container_id;
    let entry = match cached {
        Ok(None) => return Earlier::None,
        Ok(Some(entry)) => entry,
        Err(e) => {
            return Earlier::Refused(format!(
                "container {id} already has a cache entry that cannot be read ({e}); DEL the container \
                 (it cleans up without the entry), then ADD it again"
            ))
        }
    };
    if !entry.added() {
        return Earlier::Refused(format!(
            "an earlier ADD of container {id} did not complete (its process ended while its delegates ran): \
             DEL the container to remove what it left, then ADD it again"
        ));
    }
    let changes = differences(&entry, planned);
    if changes.is_empty() {
        return Earlier::Same(Box::new(entry));
    }
    Earlier::Refused(format!(
        "container {id} is already attached ({}) and this ADD asks for something else ({}); a repeated ADD \
         never changes a running container: DEL it, then ADD it again (to repair drift that CHECK reports, \
         run `multusctl repair {id}` instead)",
        attachment_list(&entry.attachments),
        changes.join("; ")
    ))
}

/// What differs between the cached plan and this ADD's (results and timestamps aside).
fn differences(cached: &CacheEntry, planned: &CacheEntry) -> Vec<String> {
    let mut out = Vec::new();
    let mut field = |what: &str, was: String, now: String| {
        if was != now {
            out.push(format!("{what} was {was}, now {now}"));
        }
    };
    field(
        "CNI_NETNS",
        format!("{:?}", cached.netns),
        format!("{:?}", planned.netns),
    );
    field("CNI_IFNAME", cached.ifname.clone(), planned.ifname.clone());
    field(
        "cniVersion",
        cached.cni_version.clone(),
        planned.cni_version.clone(),
    );
    field(
        "CNI_ARGS",
        format!("{:?}", cached.cni_args),
        format!("{:?}", planned.cni_args),
    );
    field(
        "the pod",
        format!("{:?}", cached.pod),
        format!("{:?}", planned.pod),
    );
    let names = |list: &[Attachment]| attachment_list(list);
    if names(&cached.attachments) != names(&planned.attachments) {
        out.push(format!(
            "the networks were {}, now {}",
            names(&cached.attachments),
            names(&planned.attachments)
        ));
    } else {
        for (was, now) in cached.attachments.iter().zip(&planned.attachments) {
            if without_result(was) != without_result(now) {
                out.push(format!(
                    "network {} ({}) has another configuration",
                    now.name, now.ifname
                ));
            }
        }
    }
    out
}

/// `net-a as eth0, net-b as net1`.
fn attachment_list(list: &[Attachment]) -> String {
    list.iter()
        .map(|a| format!("{} as {}", a.name, a.ifname))
        .collect::<Vec<_>>()
        .join(", ")
}

fn without_result(a: &Attachment) -> Attachment {
    Attachment {
        result: None,
        ..a.clone()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::{
        config::NetworkConfig,
        delegate::cache::{AddState, CACHE_FORMAT},
    };

    fn entry(networks: &[(&str, &str, u32)], state: Option<AddState>, results: bool) -> CacheEntry {
        CacheEntry {
            format: CACHE_FORMAT,
            container_id: crate::cni::ContainerId::parse("c1").unwrap(),
            netns: Some("/run/netns/p".into()),
            ifname: "eth0".into(),
            cni_version: "1.0.0".into(),
            cni_args: String::new(),
            pod: None,
            attachments: networks
                .iter()
                .map(|(name, ifname, mtu)| {
                    let network = NetworkConfig::from_value(
                        json!({"cniVersion": "1.0.0", "name": name, "type": "bridge", "mtu": mtu}),
                        "t",
                    )
                    .unwrap();
                    Attachment {
                        result: results.then(|| json!({"cniVersion": "1.0.0"})),
                        ..Attachment::new(*name, *ifname, network, "")
                    }
                })
                .collect(),
            created_at: 1,
            add_state: state,
            extra: Default::default(),
            origin: Default::default(),
        }
    }

    const TWO: &[(&str, &str, u32)] = &[("a", "eth0", 1500), ("b", "net1", 1500)];

    #[test]
    fn nothing_cached_runs() {
        let planned = entry(TWO, Some(AddState::Adding), false);
        assert!(matches!(decide(Ok(None), &planned), Earlier::None));
    }

    #[test]
    fn the_same_plan_answers_with_the_cached_entry() {
        let planned = entry(TWO, Some(AddState::Adding), false);
        let cached = entry(TWO, Some(AddState::Added), true);
        match decide(Ok(Some(cached.clone())), &planned) {
            Earlier::Same(e) => assert_eq!(*e, cached),
            other => panic!("{other:?}"),
        }
        // A file of an older version: complete when every attachment has its result.
        match decide(Ok(Some(entry(TWO, None, true))), &planned) {
            Earlier::Same(_) => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn another_plan_is_refused_naming_the_difference() {
        let planned = entry(&[("a", "eth0", 1500), ("b", "net1", 9000)], None, false);
        let cached = entry(TWO, Some(AddState::Added), true);
        let Earlier::Refused(why) = decide(Ok(Some(cached.clone())), &planned) else {
            panic!("refused")
        };
        assert!(
            why.contains("network b (net1) has another configuration"),
            "{why}"
        );
        assert!(
            why.contains("DEL it") && why.contains("multusctl repair c1"),
            "{why}"
        );
        let planned = entry(&[("a", "eth0", 1500), ("c", "net1", 1500)], None, false);
        let Earlier::Refused(why) = decide(Ok(Some(cached)), &planned) else {
            panic!("refused")
        };
        assert!(
            why.contains("were a as eth0, b as net1, now a as eth0, c as net1"),
            "{why}"
        );
    }

    #[test]
    fn an_unfinished_or_unreadable_entry_is_refused() {
        let planned = entry(TWO, Some(AddState::Adding), false);
        for cached in [
            entry(TWO, Some(AddState::Adding), false),
            entry(TWO, None, false),
        ] {
            let Earlier::Refused(why) = decide(Ok(Some(cached)), &planned) else {
                panic!("refused")
            };
            assert!(
                why.contains("did not complete") && why.contains("DEL"),
                "{why}"
            );
        }
        let torn = CacheError::Corrupt("/x/c1".into(), "EOF".into());
        assert!(matches!(decide(Err(torn), &planned), Earlier::Refused(_)));
    }
}
