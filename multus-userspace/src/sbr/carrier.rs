//! The carrier device (a NOARP veth inside the pod) and the routes through it, over rtnetlink.
//!
//! The carrier is where the pod's main table sends default-routed unicast traffic, so that the
//! carrier's egress program sees it before any neighbour resolution: it has no address, no ARP and
//! (with `addr_gen_mode` none) no IPv6 link-local address, so it never sends anything by itself.
//! Its peer only exists to give the carrier a link. It lives in the carrier's anchor namespace
//! (see [`super::anchor`]) with IPv6 off; when no anchor could be made, it stays in the pod with
//! IPv6 disabled and IPv4 forwarding off.

use std::{fs::File, net::IpAddr, os::fd::AsRawFd};

use netlink_packet_route::route::{RouteMessage, RouteProtocol, RouteScope};
use rtnetlink::{Handle, RouteMessageBuilder};

use super::{
    error::{nl, SbrError},
    plan::CarrierRoute,
    sysctl::{self, conf_path},
    types::{CARRIER_IFNAME, CARRIER_PEER_IFNAME},
};
use crate::netns::netlink::{
    self as nlh, route_pref_source, route_source_prefix, LinkDetail, Route,
};

/// Route protocol number marking the routes SBR adds (`proto 83` in `ip route`).
pub const RTPROT_SBR: u8 = 83;

/// Prefix of the name a carrier gets when it is retired: it is down and routeless, and the kernel
/// deletes it (in the background) when its anchor namespace goes.
pub const RETIRED_PREFIX: &str = "sbrdel-";

/// Creates the carrier (NOARP, no IPv6 address) with its peer in `anchor` (up there) or, without
/// an anchor, beside it in the pod; sets the carrier up. Returns it as it is then.
pub async fn create(h: &Handle, mtu: u32, anchor: Option<&File>) -> Result<LinkDetail, SbrError> {
    nlh::add_veth_pair_in(
        h,
        CARRIER_IFNAME,
        CARRIER_PEER_IFNAME,
        mtu,
        true,
        anchor.map(|f| f.as_raw_fd()),
    )
    .await
    .map_err(nl(format!("create {CARRIER_IFNAME}")))?;
    // Before the link comes up: no link-local address, hence no DAD, MLD or router solicitation.
    sysctl::write(&conf_path("ipv6", CARRIER_IFNAME, "addr_gen_mode"), 1)?;
    let mut up = vec![CARRIER_IFNAME];
    if anchor.is_none() {
        sysctl::write(&conf_path("ipv6", CARRIER_PEER_IFNAME, "disable_ipv6"), 1)?;
        sysctl::write(&conf_path("ipv4", CARRIER_PEER_IFNAME, "forwarding"), 0)?;
        up.insert(0, CARRIER_PEER_IFNAME);
    }
    for name in up {
        let link = nlh::link_by_name(h, name)
            .await
            .map_err(nl(format!("look up {name}")))?
            .ok_or_else(|| SbrError::InterfaceNotFound(name.to_string()))?;
        nlh::set_link_up(h, link.index)
            .await
            .map_err(nl(format!("set {name} up")))?;
    }
    // Asking for one link makes the kernel process its pending link-watch event now (rather than
    // in a worker, up to a second later): the carrier is then operationally up, and IPv6 has given
    // it its multicast route, which the caller removes.
    nlh::link_detail_by_name(h, CARRIER_IFNAME)
        .await
        .map_err(nl(format!("look up {CARRIER_IFNAME}")))?
        .ok_or_else(|| SbrError::InterfaceNotFound(CARRIER_IFNAME.to_string()))
}

/// Retires an anchored carrier: down (the kernel removes every route through it at once) and
/// renamed out of the way of a new carrier. The kernel deletes it when its anchor is unmounted.
pub async fn retire(h: &Handle, index: u32) -> Result<(), SbrError> {
    nlh::set_link_down(h, index)
        .await
        .map_err(nl(format!("set {CARRIER_IFNAME} down")))?;
    nlh::rename_link(h, index, &format!("{RETIRED_PREFIX}{index:x}"))
        .await
        .map_err(nl(format!("rename {CARRIER_IFNAME}")))
}

/// The netlink message that adds `route` through the carrier `oif`.
pub fn route_message(route: &CarrierRoute, oif: u32) -> RouteMessage {
    let protocol = RouteProtocol::Other(RTPROT_SBR);
    match route.dst {
        IpAddr::V4(dst) => {
            let mut b = RouteMessageBuilder::<std::net::Ipv4Addr>::new()
                .destination_prefix(dst, route.prefix_len)
                .output_interface(oif)
                .protocol(protocol)
                .scope(RouteScope::Link);
            if let Some(IpAddr::V4(src)) = route.prefsrc {
                b = b.pref_source(src);
            }
            b.build()
        }
        IpAddr::V6(dst) => {
            let mut b = RouteMessageBuilder::<std::net::Ipv6Addr>::new()
                .destination_prefix(dst, route.prefix_len)
                .output_interface(oif)
                .protocol(protocol);
            if let Some(IpAddr::V6(from)) = route.from {
                b = b.source_prefix(from, 128);
            }
            if let Some(IpAddr::V6(src)) = route.prefsrc {
                b = b.pref_source(src);
            }
            b.build()
        }
    }
}

/// Reads an existing route through the carrier back into a [`CarrierRoute`].
pub fn parse_route(r: &Route) -> CarrierRoute {
    CarrierRoute {
        dst: r.dst,
        prefix_len: r.prefix_len,
        from: route_source_prefix(&r.message).map(|(a, _)| a),
        prefsrc: route_pref_source(&r.message),
    }
}
