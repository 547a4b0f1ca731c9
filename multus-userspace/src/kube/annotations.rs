//! Pod annotations of the NPWG specification (v1.3): `k8s.v1.cni.cncf.io/networks` in both its
//! syntaxes (`[ns/]name[@ifname],...` and a JSON list of selection elements) and
//! `v1.multus-cni.io/default-network`. Every field is validated, and errors name the field.

use std::net::IpAddr;

use serde_json::{Map, Value};

use crate::{
    cni::{IfName, IpNet},
    explain::quote,
};

/// The annotation listing the pod's additional networks.
pub const NETWORKS: &str = "k8s.v1.cni.cncf.io/networks";
/// The annotation replacing the cluster network for one pod.
pub const DEFAULT_NETWORK: &str = "v1.multus-cni.io/default-network";
/// The annotation multus writes with the attachments' status.
pub const NETWORK_STATUS: &str = "k8s.v1.cni.cncf.io/network-status";

/// One network selection element.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NetworkSelection {
    /// NAD name.
    pub name: String,
    /// NAD namespace (default: the pod's).
    pub namespace: Option<String>,
    /// Interface name inside the pod.
    pub interface: Option<String>,
    /// Static addresses (runtimeConfig `ips`).
    pub ips: Vec<IpNet>,
    /// MAC address (runtimeConfig `mac`).
    pub mac: Option<String>,
    /// Gateways for the pod's default route(s) through this attachment.
    pub default_route: Vec<IpAddr>,
    /// Port mappings (runtimeConfig `portMappings`).
    pub port_mappings: Option<Value>,
    /// Bandwidth limits (runtimeConfig `bandwidth`).
    pub bandwidth: Option<Value>,
    /// Extra plugin arguments (merged into `args.cni`).
    pub cni_args: Option<Map<String, Value>>,
    /// InfiniBand GUID (runtimeConfig `infinibandGUID`).
    pub infiniband_guid: Option<String>,
    /// Device to use (runtimeConfig `deviceID`).
    pub device_id: Option<String>,
    /// Name of an IPAMClaim (runtimeConfig `ipam-claim-reference`... passed as `ipamClaimReference`).
    pub ipam_claim_reference: Option<String>,
}

/// A malformed annotation.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("annotation {annotation}: {what}")]
pub struct AnnotationError {
    /// Which annotation.
    pub annotation: &'static str,
    /// What is wrong, naming the element and field.
    pub what: String,
}

fn err(annotation: &'static str, what: impl Into<String>) -> AnnotationError {
    AnnotationError {
        annotation,
        what: what.into(),
    }
}

/// Parses `k8s.v1.cni.cncf.io/networks` (JSON when it contains `[`, `{` or `"`, as the reference does).
pub fn parse_networks(value: &str) -> Result<Vec<NetworkSelection>, AnnotationError> {
    parse_selection_list(NETWORKS, value)
}

/// Parses `v1.multus-cni.io/default-network`: exactly one element.
pub fn parse_default_network(value: &str) -> Result<NetworkSelection, AnnotationError> {
    let mut list = parse_selection_list(DEFAULT_NETWORK, value)?;
    match list.len() {
        1 => Ok(list.remove(0)),
        0 => Err(err(DEFAULT_NETWORK, "is empty")),
        n => Err(err(
            DEFAULT_NETWORK,
            format!("names {n} networks; it may name exactly one"),
        )),
    }
}

/// The largest annotation value parsed: Kubernetes refuses an object whose annotations together
/// exceed 256 KiB (apimachinery's `TotalAnnotationSizeLimitB`), so a larger one did not come
/// through a real API server.
pub const MAX_ANNOTATION: usize = 256 * 1024;

fn parse_selection_list(
    annotation: &'static str,
    value: &str,
) -> Result<Vec<NetworkSelection>, AnnotationError> {
    if value.len() > MAX_ANNOTATION {
        return Err(err(
            annotation,
            format!(
                "is {} bytes, larger than {} KiB (the most Kubernetes allows for all of a pod's annotations)",
                value.len(),
                MAX_ANNOTATION >> 10
            ),
        ));
    }
    let value = value.trim();
    if value.is_empty() {
        return Ok(Vec::new());
    }
    if value.contains(['[', '{', '"']) {
        let parsed: Value = crate::explain::from_bytes(value.as_bytes())
            .map_err(|e| err(annotation, format!("is not valid JSON: {e}")))?;
        let items = match parsed {
            Value::Array(items) => items,
            obj @ Value::Object(_) => vec![obj],
            _ => {
                return Err(err(
                    annotation,
                    "must be a JSON list of network selection objects",
                ))
            }
        };
        items
            .iter()
            .enumerate()
            .map(|(i, v)| parse_element(annotation, i, v))
            .collect()
    } else {
        value
            .split(',')
            .map(str::trim)
            .enumerate()
            .map(|(i, item)| parse_short(annotation, i, item))
            .collect()
    }
}

/// `[namespace/]name[@interface]`.
fn parse_short(
    annotation: &'static str,
    i: usize,
    item: &str,
) -> Result<NetworkSelection, AnnotationError> {
    let at = |what: String| err(annotation, format!("element {i} ({}): {what}", quote(item)));
    if item.is_empty() {
        return Err(at("is empty (stray comma?)".into()));
    }
    let (rest, interface) = match item.split_once('@') {
        Some((r, ifname)) => (r, Some(ifname.to_string())),
        None => (item, None),
    };
    let (namespace, name) = match rest.split_once('/') {
        Some((ns, n)) => (Some(ns.to_string()), n.to_string()),
        None => (None, rest.to_string()),
    };
    let sel = NetworkSelection {
        name,
        namespace,
        interface,
        ..Default::default()
    };
    validate_identity(&sel).map_err(at)?;
    Ok(sel)
}

fn parse_element(
    annotation: &'static str,
    i: usize,
    v: &Value,
) -> Result<NetworkSelection, AnnotationError> {
    let label = v.get("name").and_then(Value::as_str).unwrap_or("");
    let at = |field: &str, what: String| {
        err(
            annotation,
            format!("element {i} ({}): field \"{field}\": {what}", quote(label)),
        )
    };
    let obj = v
        .as_object()
        .ok_or_else(|| err(annotation, format!("element {i} is not a JSON object")))?;
    let string = |field: &str| -> Result<Option<String>, AnnotationError> {
        match obj.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(at(field, format!("must be a string, not {other}"))),
        }
    };
    let strings = |field: &str| -> Result<Vec<String>, AnnotationError> {
        match obj.get(field) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(a)) => a
                .iter()
                .map(|x| {
                    x.as_str()
                        .map(String::from)
                        .ok_or_else(|| at(field, format!("{x} is not a string")))
                })
                .collect(),
            Some(other) => Err(at(field, format!("must be a list of strings, not {other}"))),
        }
    };
    let name = string("name")?.ok_or_else(|| at("name", "is required".into()))?;
    let mut sel = NetworkSelection {
        name,
        namespace: string("namespace")?,
        interface: string("interface")?,
        mac: string("mac")?,
        infiniband_guid: string("infiniband-guid")?,
        device_id: string("deviceID")?,
        ipam_claim_reference: string("ipam-claim-reference")?,
        ..Default::default()
    };
    validate_identity(&sel)
        .map_err(|w| err(annotation, format!("element {i} ({}): {w}", quote(label))))?;
    for ip in strings("ips")? {
        sel.ips.push(ip.parse().map_err(|_| {
            at(
                "ips",
                format!("{} is not an IP address or CIDR", quote(&ip)),
            )
        })?);
    }
    for gw in strings("default-route")? {
        sel.default_route.push(gw.parse().map_err(|_| {
            at(
                "default-route",
                format!("{} is not an IP address", quote(&gw)),
            )
        })?);
    }
    let v4 = sel.default_route.iter().filter(|g| g.is_ipv4()).count();
    if v4 > 1 || sel.default_route.len() - v4 > 1 {
        return Err(at(
            "default-route",
            "names more than one gateway of one address family (ECMP is not supported)".into(),
        ));
    }
    if let Some(mac) = &sel.mac {
        if !is_hex_octets(mac, &[6, 20]) {
            return Err(at(
                "mac",
                format!("{} is not a MAC address (xx:xx:xx:xx:xx:xx)", quote(mac)),
            ));
        }
    }
    if let Some(guid) = &sel.infiniband_guid {
        if !is_hex_octets(guid, &[8]) {
            return Err(at(
                "infiniband-guid",
                format!(
                    "{} is not a GUID (8 colon-separated hex octets)",
                    quote(guid)
                ),
            ));
        }
    }
    if sel.device_id.as_deref() == Some("") {
        return Err(at("deviceID", "is empty".into()));
    }
    if let Some(claim) = &sel.ipam_claim_reference {
        if !is_dns1123_subdomain(claim) {
            return Err(at(
                "ipam-claim-reference",
                format!("{} is not a valid object name", quote(claim)),
            ));
        }
    }
    match obj.get("portMappings") {
        None | Some(Value::Null) => {}
        Some(Value::Array(list)) => {
            for (j, pm) in list.iter().enumerate() {
                validate_port_mapping(pm)
                    .map_err(|w| at("portMappings", format!("entry {j}: {w}")))?;
            }
            sel.port_mappings = Some(Value::Array(list.clone()));
        }
        Some(other) => return Err(at("portMappings", format!("must be a list, not {other}"))),
    }
    match obj.get("bandwidth") {
        None | Some(Value::Null) => {}
        Some(Value::Object(bw)) => {
            for (k, val) in bw {
                if !matches!(
                    k.as_str(),
                    "ingressRate" | "ingressBurst" | "egressRate" | "egressBurst"
                ) {
                    return Err(at(
                        "bandwidth",
                        format!(
                            "unknown key {} (ingressRate, ingressBurst, egressRate, egressBurst)",
                            quote(k)
                        ),
                    ));
                }
                if val.as_u64().is_none() {
                    return Err(at(
                        "bandwidth",
                        format!("{k} must be a non-negative integer"),
                    ));
                }
            }
            sel.bandwidth = Some(Value::Object(bw.clone()));
        }
        Some(other) => return Err(at("bandwidth", format!("must be an object, not {other}"))),
    }
    match obj.get("cni-args") {
        None | Some(Value::Null) => {}
        Some(Value::Object(a)) => sel.cni_args = Some(a.clone()),
        Some(other) => return Err(at("cni-args", format!("must be an object, not {other}"))),
    }
    Ok(sel)
}

fn validate_identity(sel: &NetworkSelection) -> Result<(), String> {
    if !is_dns1123_subdomain(&sel.name) {
        return Err(format!(
            "network name {} is not a valid NetworkAttachmentDefinition name (lowercase letters, digits, '-' and '.')",
            quote(&sel.name)
        ));
    }
    if let Some(ns) = &sel.namespace {
        if !is_dns1123_label(ns) {
            return Err(format!(
                "namespace {} is not a valid namespace name",
                quote(ns)
            ));
        }
    }
    if let Some(ifname) = &sel.interface {
        IfName::parse(ifname).map_err(|e| format!("interface: {e}"))?;
    }
    Ok(())
}

fn validate_port_mapping(pm: &Value) -> Result<(), String> {
    let obj = pm.as_object().ok_or("is not an object")?;
    for key in ["hostPort", "containerPort"] {
        let port = obj
            .get(key)
            .and_then(Value::as_u64)
            .ok_or(format!("{key} is missing or not a number"))?;
        if port == 0 || port > 65535 {
            return Err(format!("{key} {port} is not a port number"));
        }
    }
    if let Some(p) = obj.get("protocol") {
        let p = p.as_str().ok_or("protocol must be a string")?;
        if !matches!(p.to_ascii_lowercase().as_str(), "tcp" | "udp" | "sctp") {
            return Err(format!("protocol {} is not tcp, udp or sctp", quote(p)));
        }
    }
    if let Some(ip) = obj.get("hostIP") {
        let ip = ip.as_str().ok_or("hostIP must be a string")?;
        if !ip.is_empty() && ip.parse::<IpAddr>().is_err() {
            return Err(format!("hostIP {} is not an IP address", quote(ip)));
        }
    }
    Ok(())
}

fn is_hex_octets(s: &str, lengths: &[usize]) -> bool {
    let parts: Vec<&str> = s.split(':').collect();
    lengths.contains(&parts.len())
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()))
}

/// A DNS-1123 label: 1-63 lowercase alphanumerics or '-', alphanumeric at both ends.
pub fn is_dns1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A DNS-1123 subdomain: dot-separated labels, at most 253 characters.
pub fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_form() {
        let v = parse_networks("macvlan-conf, ns2/sriov@net5 ,bridge.net").unwrap();
        assert_eq!(v.len(), 3);
        assert_eq!(v[1].namespace.as_deref(), Some("ns2"));
        assert_eq!(v[1].interface.as_deref(), Some("net5"));
        assert_eq!(v[2].name, "bridge.net");
        assert!(parse_networks("").unwrap().is_empty());
    }

    #[test]
    fn short_form_errors() {
        for bad in [
            "a,,b",
            "UPPER",
            "ns/a@this-name-is-too-long",
            "a@x/y",
            "bad_ns!/a",
            "a@",
        ] {
            assert!(parse_networks(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn json_every_field() {
        let v = parse_networks(
            r#"[{"name":"macvlan-conf","namespace":"default","interface":"eth9","ips":["10.1.1.11/24","fd00::5"],
               "mac":"c2:b0:57:49:47:f1","default-route":["10.1.1.1","fd00::1"],
               "portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"TCP"}],
               "bandwidth":{"ingressRate":1000,"egressBurst":10},"cni-args":{"foo":"bar"},
               "infiniband-guid":"c2:b0:57:49:47:f1:00:01","deviceID":"0000:03:00.1",
               "ipam-claim-reference":"claim-a","unknown":1}]"#,
        )
        .unwrap();
        let s = &v[0];
        assert_eq!(s.ips.len(), 2);
        assert_eq!(s.default_route.len(), 2);
        assert_eq!(s.cni_args.as_ref().unwrap()["foo"], "bar");
        assert_eq!(s.device_id.as_deref(), Some("0000:03:00.1"));
        assert_eq!(s.ipam_claim_reference.as_deref(), Some("claim-a"));
    }

    #[test]
    fn json_errors_name_the_field() {
        let cases = [
            (r#"[{"namespace":"x"}]"#, "\"name\""),
            (r#"[{"name":"a","ips":["10.0.0.300"]}]"#, "\"ips\""),
            (r#"[{"name":"a","mac":"zz:zz"}]"#, "\"mac\""),
            (
                r#"[{"name":"a","default-route":["1.1.1.1","2.2.2.2"]}]"#,
                "\"default-route\"",
            ),
            (
                r#"[{"name":"a","default-route":["nope"]}]"#,
                "\"default-route\"",
            ),
            (
                r#"[{"name":"a","portMappings":[{"hostPort":0,"containerPort":80}]}]"#,
                "\"portMappings\"",
            ),
            (
                r#"[{"name":"a","portMappings":[{"hostPort":1,"containerPort":80,"protocol":"icmp"}]}]"#,
                "\"portMappings\"",
            ),
            (r#"[{"name":"a","bandwidth":{"rate":1}}]"#, "\"bandwidth\""),
            (r#"[{"name":"a","cni-args":[1]}]"#, "\"cni-args\""),
            (
                r#"[{"name":"a","infiniband-guid":"12:34"}]"#,
                "\"infiniband-guid\"",
            ),
            (r#"[{"name":"a","deviceID":""}]"#, "\"deviceID\""),
            (
                r#"[{"name":"a","ipam-claim-reference":"Bad_Name"}]"#,
                "\"ipam-claim-reference\"",
            ),
            (
                r#"[{"name":"a","interface":"way-too-long-name"}]"#,
                "interface",
            ),
            (r#"[{"name":"a","ips":"10.0.0.1"}]"#, "\"ips\""),
            (r#"[{"name":5}]"#, "\"name\""),
            (r#"[1]"#, "element 0"),
            (r#"[{"name":"a"}"#, "not valid JSON"),
        ];
        for (input, needle) in cases {
            let e = parse_networks(input).unwrap_err().to_string();
            assert!(e.contains(needle), "{input}: {e}");
        }
    }

    #[test]
    fn an_annotation_larger_than_kubernetes_allows_is_refused_unparsed() {
        let at_limit = format!("a{}", " ".repeat(MAX_ANNOTATION - 1));
        assert_eq!(parse_networks(&at_limit).unwrap().len(), 1);
        for value in ["a,".repeat(MAX_ANNOTATION), "[".repeat(MAX_ANNOTATION + 1)] {
            let e = parse_networks(&value).unwrap_err().to_string();
            assert!(
                e.contains(NETWORKS) && e.contains("larger than 256 KiB"),
                "{e}"
            );
        }
    }

    #[test]
    fn default_network_exactly_one() {
        assert_eq!(
            parse_default_network("kube-system/calico").unwrap().name,
            "calico"
        );
        assert!(parse_default_network("a,b").is_err());
        assert!(parse_default_network("").is_err());
    }
}
