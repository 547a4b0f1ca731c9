//! Pod events, recorded as the reference multus records them: a core/v1 `Event` in the pod's
//! namespace, `source.component` and `reportingComponent` `multus`, named `<pod>.<hex nanos>`
//! like client-go's recorder. `AddedInterface` (Normal) for each attachment an ADD made, with
//! the reference's message (`Add net1 [10.1.2.3/24] from default/net-a`), and a Warning when an
//! ADD fails. Building an event is pure; sending it is [`KubeClient::create_event`](super::client::KubeClient::create_event).

use k8s_openapi::{
    api::core::v1::{Event, EventSource, ObjectReference},
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time},
    jiff::Timestamp,
};

use super::PodIdentity;

/// The component that events name as their source (the reference's `EventSource{Component}`).
pub const COMPONENT: &str = "multus";

/// Reason of the event for an attachment an ADD made (the reference's).
pub const ADDED_INTERFACE: &str = "AddedInterface";

/// Reason of the Warning for an ADD that failed because a NetworkAttachmentDefinition does not
/// exist (the reference's).
pub const NO_NETWORK_FOUND: &str = "NoNetworkFound";

/// Reason of the Warning for any other failed ADD.
pub const FAILED_ADD_NETWORK: &str = "FailedAddNetwork";

/// An event's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    /// Something worked.
    Normal,
    /// Something failed.
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// What an event says, before it is addressed to a pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodEvent {
    /// Normal or Warning.
    pub kind: EventType,
    /// UpperCamelCase reason.
    pub reason: &'static str,
    /// The human message.
    pub message: String,
}

/// The longest message kept (client-go's recorder and events.k8s.io cap notes at 1 KiB).
const MAX_MESSAGE: usize = 1024;

impl PodEvent {
    /// `AddedInterface`: `Add <ifname> [<ip/prefix> ...] from <network>`, as the reference
    /// formats it (Go's `%v` of a string slice: space-separated in brackets).
    pub fn added_interface(ifname: &str, ips: &[String], network: &str) -> PodEvent {
        let message = if network.is_empty() {
            format!("Add {ifname} [{}]", ips.join(" "))
        } else {
            format!("Add {ifname} [{}] from {network}", ips.join(" "))
        };
        PodEvent {
            kind: EventType::Normal,
            reason: ADDED_INTERFACE,
            message,
        }
    }

    /// The Warning of a failed ADD.
    pub fn add_failed(reason: &'static str, message: &str) -> PodEvent {
        PodEvent {
            kind: EventType::Warning,
            reason,
            message: truncate(message, MAX_MESSAGE),
        }
    }

    /// The core/v1 Event about `pod`, stamped `now`.
    pub fn to_event(&self, pod: &PodIdentity, now: Timestamp) -> Event {
        let time = Time(now);
        Event {
            metadata: ObjectMeta {
                name: Some(format!("{}.{:x}", pod.name, now.as_nanosecond())),
                namespace: Some(pod.namespace.clone()),
                ..Default::default()
            },
            involved_object: ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                namespace: Some(pod.namespace.clone()),
                name: Some(pod.name.clone()),
                uid: Some(pod.uid.clone()).filter(|u| !u.is_empty()),
                ..Default::default()
            },
            reason: Some(self.reason.to_string()),
            message: Some(self.message.clone()),
            type_: Some(self.kind.as_str().to_string()),
            source: Some(EventSource {
                component: Some(COMPONENT.into()),
                host: None,
            }),
            reporting_component: Some(COMPONENT.into()),
            reporting_instance: Some(String::new()),
            first_timestamp: Some(time.clone()),
            last_timestamp: Some(time),
            count: Some(1),
            ..Default::default()
        }
    }
}

/// `s` cut to at most `max` bytes on a character boundary.
fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> PodIdentity {
        PodIdentity {
            namespace: "default".into(),
            name: "web".into(),
            uid: "1234".into(),
        }
    }

    #[test]
    fn added_interface_reads_like_the_reference() {
        let e = PodEvent::added_interface(
            "net1",
            &["10.1.2.3/24".into(), "fd00::3/64".into()],
            "default/net-a",
        );
        assert_eq!(
            e.message,
            "Add net1 [10.1.2.3/24 fd00::3/64] from default/net-a"
        );
        assert_eq!(e.reason, "AddedInterface");
        assert_eq!(
            PodEvent::added_interface("eth0", &[], "").message,
            "Add eth0 []"
        );
    }

    #[test]
    fn the_event_names_the_pod_like_client_go_does() {
        let now = Timestamp::from_second(1_700_000_000).unwrap();
        let e = PodEvent::added_interface("eth0", &["10.0.0.2/24".into()], "cluster")
            .to_event(&pod(), now);
        let j = serde_json::to_value(&e).unwrap();
        assert_eq!(j["metadata"]["name"], "web.17979cfe362a0000");
        assert_eq!(j["metadata"]["namespace"], "default");
        assert_eq!(
            j["involvedObject"],
            serde_json::json!({"apiVersion": "v1", "kind": "Pod", "namespace": "default", "name": "web", "uid": "1234"})
        );
        assert_eq!(j["type"], "Normal");
        assert_eq!(j["source"], serde_json::json!({"component": "multus"}));
        assert_eq!(j["reportingComponent"], "multus");
        assert_eq!(j["count"], 1);
        assert_eq!(j["firstTimestamp"], "2023-11-14T22:13:20Z");
    }

    #[test]
    fn warnings_are_capped_at_a_kibibyte() {
        let long = "é".repeat(1000);
        let e = PodEvent::add_failed(FAILED_ADD_NETWORK, &long);
        assert!(e.message.len() <= 1024);
        assert_eq!(e.kind, EventType::Warning);
    }
}
