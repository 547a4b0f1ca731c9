//! The carrier device (a NOARP veth pair inside the pod) and the routes through it, over rtnetlink.
//!
//! The carrier is where the pod's main table sends default-routed unicast traffic, so that the
//! carrier's egress program sees it before any neighbour resolution: it has no address, no ARP and
//! (with `addr_gen_mode` none) no IPv6 link-local address, so it never sends anything by itself.
//! Its peer only exists to give the carrier a link; it has IPv6 disabled and IPv4 forwarding off.

use std::net::IpAddr;

use netlink_packet_route::route::{RouteMessage, RouteProtocol, RouteScope};
use rtnetlink::{Handle, RouteMessageBuilder};

use super::{
    error::nl,
    plan::CarrierRoute,
    sysctl::{self, conf_path},
    SbrError, CARRIER_IFNAME, CARRIER_PEER_IFNAME,
};
use crate::netns::netlink::{self as nlh, route_pref_source, route_source_prefix, Route};

/// Route protocol number marking the routes SBR adds (`proto 83` in `ip route`).
pub const RTPROT_SBR: u8 = 83;

/// Creates the carrier pair (NOARP carrier, no IPv6 addresses on either end) and sets both up.
pub async fn create(h: &Handle, mtu: u32) -> Result<(), SbrError> {
    nlh::add_veth_pair(h, CARRIER_IFNAME, CARRIER_PEER_IFNAME, mtu, true)
        .await
        .map_err(nl(format!("create {CARRIER_IFNAME}")))?;
    // Before the link comes up: no link-local address, hence no DAD, MLD or router solicitation.
    sysctl::write(&conf_path("ipv6", CARRIER_IFNAME, "addr_gen_mode"), 1)?;
    sysctl::write(&conf_path("ipv6", CARRIER_PEER_IFNAME, "disable_ipv6"), 1)?;
    sysctl::write(&conf_path("ipv4", CARRIER_PEER_IFNAME, "forwarding"), 0)?;
    for name in [CARRIER_PEER_IFNAME, CARRIER_IFNAME] {
        let link = nlh::link_by_name(h, name)
            .await
            .map_err(nl(format!("look up {name}")))?
            .ok_or_else(|| SbrError::InterfaceNotFound(name.to_string()))?;
        nlh::set_link_up(h, link.index).await.map_err(nl(format!("set {name} up")))?;
    }
    Ok(())
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
