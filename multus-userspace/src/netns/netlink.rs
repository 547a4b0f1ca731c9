//! Netlink queries and changes used by the plugin, on an rtnetlink handle opened by [`super::NetNs`].

use std::{future::Future, net::IpAddr};

use futures::TryStreamExt;
use netlink_packet_route::{
    address::AddressAttribute,
    link::{LinkAttribute, LinkFlags, LinkMessage},
    route::{RouteAddress, RouteAttribute, RouteMessage},
    AddressFamily,
};
use rtnetlink::Handle;

/// Opens an rtnetlink connection in the current thread's namespace and runs `work` with it on a
/// current-thread runtime.
pub fn with_handle<T, F, Fut>(work: F) -> std::io::Result<T>
where
    F: FnOnce(Handle) -> Fut,
    Fut: Future<Output = T>,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let (connection, handle, _) = rtnetlink::new_connection()?;
        let driver = tokio::spawn(connection);
        let out = work(handle).await;
        driver.abort();
        Ok(out)
    })
}

/// A network interface as the plugin needs to see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    /// Interface index.
    pub index: u32,
    /// Interface name.
    pub name: String,
    /// Hardware address as `aa:bb:cc:dd:ee:ff`, when the link has one.
    pub mac: Option<String>,
    /// MTU.
    pub mtu: u32,
    /// Administratively up.
    pub up: bool,
}

impl Link {
    fn from_message(msg: &LinkMessage) -> Self {
        let mut link = Link {
            index: msg.header.index,
            name: String::new(),
            mac: None,
            mtu: 0,
            up: msg.header.flags.contains(LinkFlags::Up),
        };
        for attr in &msg.attributes {
            match attr {
                LinkAttribute::IfName(n) => link.name = n.clone(),
                LinkAttribute::Mtu(m) => link.mtu = *m,
                LinkAttribute::Address(a) if a.len() == 6 => link.mac = Some(format_mac(a)),
                _ => {}
            }
        }
        link
    }
}

/// Formats a hardware address as lowercase colon-separated hex.
pub fn format_mac(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// All links of the namespace.
pub async fn links(handle: &Handle) -> Result<Vec<Link>, rtnetlink::Error> {
    all_links(handle, Link::from_message).await
}

/// The link called `name`, if it exists.
pub async fn link_by_name(handle: &Handle, name: &str) -> Result<Option<Link>, rtnetlink::Error> {
    link_named(handle, name, Link::from_message).await
}

/// Every link of the namespace, read by `read`.
async fn all_links<T>(
    handle: &Handle,
    read: fn(&LinkMessage) -> T,
) -> Result<Vec<T>, rtnetlink::Error> {
    let mut out = Vec::new();
    let mut stream = handle.link().get().execute();
    while let Some(msg) = stream.try_next().await? {
        out.push(read(&msg));
    }
    Ok(out)
}

/// The link called `name`, read by `read`, if it exists.
async fn link_named<T>(
    handle: &Handle,
    name: &str,
    read: fn(&LinkMessage) -> T,
) -> Result<Option<T>, rtnetlink::Error> {
    let mut stream = handle.link().get().match_name(name.to_string()).execute();
    match stream.try_next().await {
        Ok(Some(msg)) => Ok(Some(read(&msg))),
        Ok(None) => Ok(None),
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => Ok(None),
        Err(e) => Err(e),
    }
}

/// An address assigned to an interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Address {
    /// Interface index.
    pub index: u32,
    /// The address.
    pub addr: IpAddr,
    /// Prefix length.
    pub prefix_len: u8,
}

/// All addresses of the namespace (optionally of one interface).
pub async fn addresses(
    handle: &Handle,
    index: Option<u32>,
) -> Result<Vec<Address>, rtnetlink::Error> {
    let mut req = handle.address().get();
    if let Some(i) = index {
        req = req.set_link_index_filter(i);
    }
    let mut stream = req.execute();
    let mut out = Vec::new();
    while let Some(msg) = stream.try_next().await? {
        let addr = msg.attributes.iter().find_map(|a| match a {
            AddressAttribute::Local(ip) => Some(*ip),
            _ => None,
        });
        let addr = addr.or_else(|| {
            msg.attributes.iter().find_map(|a| match a {
                AddressAttribute::Address(ip) => Some(*ip),
                _ => None,
            })
        });
        if let Some(addr) = addr {
            out.push(Address {
                index: msg.header.index,
                addr,
                prefix_len: msg.header.prefix_len,
            });
        }
    }
    Ok(out)
}

/// A route of the main table, reduced to what the plugin reasons about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// Destination (`0.0.0.0`/`::` for a default route).
    pub dst: IpAddr,
    /// Destination prefix length (0 for a default route).
    pub prefix_len: u8,
    /// Gateway, if any.
    pub gateway: Option<IpAddr>,
    /// Output interface index, if any.
    pub oif: Option<u32>,
    /// Metric (priority).
    pub metric: Option<u32>,
    /// The raw message, to delete exactly this route.
    pub message: RouteMessage,
}

impl Route {
    /// True for a default route (prefix length 0).
    pub fn is_default(&self) -> bool {
        self.prefix_len == 0
    }
}

fn route_address(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

/// Routes of the main table for one address family.
pub async fn main_routes(handle: &Handle, v6: bool) -> Result<Vec<Route>, rtnetlink::Error> {
    table_routes(handle, v6, u32::from(libc::RT_TABLE_MAIN)).await
}

/// `ARPHRD_ETHER`, the link-layer type of Ethernet-like devices (veth, macvlan, bridge ports ...).
pub const ARPHRD_ETHER: u16 = 1;

/// A link with the details beyond [`Link`] that route and attachment decisions need.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkDetail {
    /// The basic view.
    pub link: Link,
    /// Link-layer type (`ARPHRD_*`).
    pub link_layer_type: u16,
    /// The `IFF_NOARP` flag.
    pub noarp: bool,
    /// Lower-layer carrier (`IFF_LOWER_UP`).
    pub lower_up: bool,
    /// Link kind (`veth`, `macvlan`, ...) when the kernel reports one.
    pub kind: Option<String>,
}

impl LinkDetail {
    fn from_message(msg: &LinkMessage) -> Self {
        use netlink_packet_route::link::{InfoKind, LinkInfo};
        let kind = msg.attributes.iter().find_map(|a| match a {
            LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|i| match i {
                LinkInfo::Kind(InfoKind::Other(k)) => Some(k.clone()),
                LinkInfo::Kind(k) => Some(k.to_string()),
                _ => None,
            }),
            _ => None,
        });
        LinkDetail {
            link: Link::from_message(msg),
            link_layer_type: u16::from(msg.header.link_layer_type),
            noarp: msg.header.flags.contains(LinkFlags::Noarp),
            lower_up: msg.header.flags.contains(LinkFlags::LowerUp),
            kind,
        }
    }
}

/// All links of the namespace with their details.
pub async fn link_details(handle: &Handle) -> Result<Vec<LinkDetail>, rtnetlink::Error> {
    all_links(handle, LinkDetail::from_message).await
}

/// The link called `name` with its details, if it exists.
pub async fn link_detail_by_name(
    handle: &Handle,
    name: &str,
) -> Result<Option<LinkDetail>, rtnetlink::Error> {
    link_named(handle, name, LinkDetail::from_message).await
}

/// Every route of one family, all tables (use [`route_table`] to tell them apart).
pub async fn routes(handle: &Handle, v6: bool) -> Result<Vec<Route>, rtnetlink::Error> {
    routes_where(handle, v6, |_| true).await
}

/// The routes of one family whose message `keep` accepts.
async fn routes_where(
    handle: &Handle,
    v6: bool,
    keep: impl Fn(&RouteMessage) -> bool,
) -> Result<Vec<Route>, rtnetlink::Error> {
    let mut msg = RouteMessage::default();
    msg.header.address_family = if v6 {
        AddressFamily::Inet6
    } else {
        AddressFamily::Inet
    };
    let mut stream = handle.route().get(msg).execute();
    let mut out = Vec::new();
    while let Some(msg) = stream.try_next().await? {
        if keep(&msg) {
            out.push(route_from_message(msg, v6));
        }
    }
    Ok(out)
}

/// Sets the MTU of a link.
pub async fn set_link_mtu(handle: &Handle, index: u32, mtu: u32) -> Result<(), rtnetlink::Error> {
    let msg = rtnetlink::LinkUnspec::new_with_index(index)
        .mtu(mtu)
        .build();
    handle.link().set(msg).execute().await
}

/// Sets a link administratively up.
pub async fn set_link_up(handle: &Handle, index: u32) -> Result<(), rtnetlink::Error> {
    let msg = rtnetlink::LinkUnspec::new_with_index(index).up().build();
    handle.link().set(msg).execute().await
}

/// Deletes a link; a link that is already gone is not an error.
pub async fn delete_link(handle: &Handle, index: u32) -> Result<(), rtnetlink::Error> {
    match handle.link().del(index).execute().await {
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => Ok(()),
        other => other,
    }
}

/// Routes of one table (`libc::RT_TABLE_MAIN`, `libc::RT_TABLE_LOCAL`, ...) for one family.
pub async fn table_routes(
    handle: &Handle,
    v6: bool,
    table: u32,
) -> Result<Vec<Route>, rtnetlink::Error> {
    routes_where(handle, v6, |msg| route_table(msg) == table).await
}

/// The table a route message belongs to (the `RTA_TABLE` attribute wins over the header byte).
pub fn route_table(msg: &RouteMessage) -> u32 {
    msg.attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(u32::from(msg.header.table))
}

fn route_from_message(msg: RouteMessage, v6: bool) -> Route {
    let unspecified = if v6 {
        IpAddr::from([0u16; 8])
    } else {
        IpAddr::from([0u8; 4])
    };
    let mut route = Route {
        dst: unspecified,
        prefix_len: msg.header.destination_prefix_length,
        gateway: None,
        oif: None,
        metric: None,
        message: RouteMessage::default(),
    };
    for attr in &msg.attributes {
        match attr {
            RouteAttribute::Destination(a) => {
                if let Some(ip) = route_address(a) {
                    route.dst = ip;
                }
            }
            RouteAttribute::Gateway(a) => route.gateway = route_address(a),
            RouteAttribute::Oif(i) => route.oif = Some(*i),
            RouteAttribute::Priority(p) => route.metric = Some(*p),
            RouteAttribute::MultiPath(hops) => {
                // A multipath route is reduced to its first next hop.
                if let Some(hop) = hops.first() {
                    if route.oif.is_none() && hop.interface_index != 0 {
                        route.oif = Some(hop.interface_index);
                    }
                    if route.gateway.is_none() {
                        route.gateway = hop.attributes.iter().find_map(|a| match a {
                            RouteAttribute::Gateway(g) => route_address(g),
                            _ => None,
                        });
                    }
                }
            }
            _ => {}
        }
    }
    route.message = msg;
    route
}

/// The preferred source address of a route message (`RTA_PREFSRC`), if any.
pub fn route_pref_source(msg: &RouteMessage) -> Option<IpAddr> {
    msg.attributes.iter().find_map(|a| match a {
        RouteAttribute::PrefSource(a) => route_address(a),
        _ => None,
    })
}

/// The source prefix of a source-specific (IPv6) route (`RTA_SRC` and its length), if any.
pub fn route_source_prefix(msg: &RouteMessage) -> Option<(IpAddr, u8)> {
    msg.attributes.iter().find_map(|a| match a {
        RouteAttribute::Source(a) => {
            route_address(a).map(|ip| (ip, msg.header.source_prefix_length))
        }
        _ => None,
    })
}

/// Adds a route (`NLM_F_EXCL`: an identical existing route is an error).
pub async fn add_route(handle: &Handle, msg: RouteMessage) -> Result<(), rtnetlink::Error> {
    handle.route().add(msg).execute().await
}

/// Adds a route, or replaces the route with the same key (destination, table, priority; and
/// source prefix for IPv6) in one step: an IPv4 route whose preferred source changed, say.
pub async fn replace_route(handle: &Handle, msg: RouteMessage) -> Result<(), rtnetlink::Error> {
    handle.route().add(msg).replace().execute().await
}

/// Deletes a route; a route that is already gone is not an error.
pub async fn delete_route(handle: &Handle, msg: RouteMessage) -> Result<(), rtnetlink::Error> {
    match handle.route().del(msg).execute().await {
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ESRCH => Ok(()),
        other => other,
    }
}

/// Asks the kernel which route (and preferred source) it would use for `dst`, optionally out of `oif`
/// (`ip route get`).
pub async fn route_get(
    handle: &Handle,
    dst: IpAddr,
    oif: Option<u32>,
) -> Result<Option<RouteMessage>, rtnetlink::Error> {
    let mut msg = RouteMessage::default();
    let (family, len, addr) = match dst {
        IpAddr::V4(a) => (AddressFamily::Inet, 32, RouteAddress::Inet(a)),
        IpAddr::V6(a) => (AddressFamily::Inet6, 128, RouteAddress::Inet6(a)),
    };
    msg.header.address_family = family;
    msg.header.destination_prefix_length = len;
    msg.attributes.push(RouteAttribute::Destination(addr));
    if let Some(oif) = oif {
        msg.attributes.push(RouteAttribute::Oif(oif));
    }
    let mut stream = handle.route().get(msg).execute();
    match stream.try_next().await {
        Ok(m) => Ok(m),
        Err(rtnetlink::Error::NetlinkError(e))
            if e.raw_code() == -libc::ENETUNREACH || e.raw_code() == -libc::EHOSTUNREACH =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// A neighbour (ARP/ND) cache entry, reduced to what the plugin reasons about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Neighbour {
    /// Interface index.
    pub ifindex: u32,
    /// The neighbour's address.
    pub addr: IpAddr,
    /// `NDA_PROTOCOL` (who installed the entry), 0 when unset.
    pub protocol: u8,
    /// The kernel keeps the entry resolved (`NTF_EXT_MANAGED`).
    pub managed: bool,
}

/// Every IPv4 and IPv6 neighbour entry of the namespace.
pub async fn neighbours(handle: &Handle) -> Result<Vec<Neighbour>, rtnetlink::Error> {
    use netlink_packet_route::neighbour::{
        NeighbourAddress, NeighbourAttribute, NeighbourExtFlags,
    };
    let mut out = Vec::new();
    let mut stream = handle.neighbours().get().execute();
    while let Some(msg) = stream.try_next().await? {
        let mut n = Neighbour {
            ifindex: msg.header.ifindex,
            addr: IpAddr::from([0u8; 4]),
            protocol: 0,
            managed: false,
        };
        let mut has_addr = false;
        for attr in &msg.attributes {
            match attr {
                NeighbourAttribute::Destination(NeighbourAddress::Inet(a)) => {
                    n.addr = IpAddr::V4(*a);
                    has_addr = true;
                }
                NeighbourAttribute::Destination(NeighbourAddress::Inet6(a)) => {
                    n.addr = IpAddr::V6(*a);
                    has_addr = true;
                }
                NeighbourAttribute::Protocol(p) => n.protocol = u8::from(*p),
                NeighbourAttribute::ExtFlags(f) => {
                    n.managed = f.contains(NeighbourExtFlags::Managed)
                }
                _ => {}
            }
        }
        if has_addr {
            out.push(n);
        }
    }
    Ok(out)
}

/// Creates (or converts an existing entry into) a managed neighbour entry: the kernel resolves it
/// now and keeps it resolved (Linux >= 5.16). `protocol` marks who owns it.
pub async fn add_managed_neighbour(
    handle: &Handle,
    ifindex: u32,
    addr: IpAddr,
    protocol: u8,
) -> Result<(), rtnetlink::Error> {
    use netlink_packet_route::{
        neighbour::{NeighbourAttribute, NeighbourExtFlags, NeighbourState},
        route::RouteProtocol,
    };
    let mut req = handle
        .neighbours()
        .add(ifindex, addr)
        .state(NeighbourState::None)
        .replace();
    let msg = req.message_mut();
    msg.attributes
        .push(NeighbourAttribute::ExtFlags(NeighbourExtFlags::Managed));
    msg.attributes
        .push(NeighbourAttribute::Protocol(RouteProtocol::from(protocol)));
    req.execute().await
}

/// Deletes a neighbour entry; an entry (or link) that is already gone is not an error.
pub async fn delete_neighbour(
    handle: &Handle,
    ifindex: u32,
    addr: IpAddr,
) -> Result<(), rtnetlink::Error> {
    use netlink_packet_route::neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourMessage};
    let mut msg = NeighbourMessage::default();
    msg.header.ifindex = ifindex;
    let (family, dst) = match addr {
        IpAddr::V4(a) => (AddressFamily::Inet, NeighbourAddress::Inet(a)),
        IpAddr::V6(a) => (AddressFamily::Inet6, NeighbourAddress::Inet6(a)),
    };
    msg.header.family = family;
    msg.attributes.push(NeighbourAttribute::Destination(dst));
    match handle.neighbours().del(msg).execute().await {
        Err(rtnetlink::Error::NetlinkError(e))
            if e.raw_code() == -libc::ENOENT || e.raw_code() == -libc::ENODEV =>
        {
            Ok(())
        }
        other => other,
    }
}

/// Makes `default via gateway dev oif` the only default route of its family in the main table.
/// Returns how many other default routes were removed.
pub async fn set_only_default_route(
    handle: &Handle,
    gateway: IpAddr,
    oif: u32,
) -> Result<usize, rtnetlink::Error> {
    let v6 = gateway.is_ipv6();
    let mut removed = 0;
    let mut exists = false;
    for route in main_routes(handle, v6).await? {
        if !route.is_default() {
            continue;
        }
        if route.gateway == Some(gateway) && route.oif == Some(oif) {
            exists = true;
        } else {
            handle.route().del(route.message.clone()).execute().await?;
            removed += 1;
        }
    }
    if !exists {
        let msg = match gateway {
            IpAddr::V4(gw) => rtnetlink::RouteMessageBuilder::<std::net::Ipv4Addr>::new()
                .gateway(gw)
                .output_interface(oif)
                .build(),
            IpAddr::V6(gw) => rtnetlink::RouteMessageBuilder::<std::net::Ipv6Addr>::new()
                .gateway(gw)
                .output_interface(oif)
                .build(),
        };
        handle.route().add(msg).execute().await?;
    }
    Ok(removed)
}

/// Sends one request and waits for its acknowledgement (or error).
async fn request_ack(
    handle: &Handle,
    message: netlink_packet_route::RouteNetlinkMessage,
    flags: u16,
) -> Result<(), rtnetlink::Error> {
    use netlink_packet_core::{NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_REQUEST};
    let mut req = NetlinkMessage::from(message);
    req.header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
    let mut response = handle.clone().request(req)?;
    while let Some(msg) = futures::StreamExt::next(&mut response).await {
        if let NetlinkPayload::Error(err) = msg.payload {
            if err.code.is_some() {
                return Err(rtnetlink::Error::NetlinkError(err));
            }
        }
    }
    Ok(())
}

/// Creates a veth pair whose first end, `name`, stays in the handle's namespace with `IFF_NOARP`
/// (when `noarp`) and is left down, while the peer goes up in the namespace `peer_netns` (an open
/// nsfs file; `None` keeps it beside `name`, down).
///
/// The request names the peer as the device to create (in `peer_netns`, up) and `name` as its veth
/// peer: the kernel configures a veth's peer before the pair is linked, and bringing a veth up
/// before that fails (`ENOTCONN`).
pub async fn add_veth_pair_in(
    handle: &Handle,
    name: &str,
    peer: &str,
    mtu: u32,
    noarp: bool,
    peer_netns: Option<std::os::fd::RawFd>,
) -> Result<(), rtnetlink::Error> {
    use netlink_packet_route::link::{InfoData, InfoVeth, LinkInfo};
    let Some(fd) = peer_netns else {
        let msg = rtnetlink::LinkVeth::new(name, peer)
            .mtu(mtu)
            .arp(!noarp)
            .build();
        return handle.link().add(msg).execute().await;
    };
    let mut msg = rtnetlink::LinkVeth::new(peer, name).mtu(mtu).up().build();
    msg.attributes.push(LinkAttribute::NetNsFd(fd));
    for attr in &mut msg.attributes {
        if let LinkAttribute::LinkInfo(infos) = attr {
            for info in infos.iter_mut() {
                if let LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(p))) = info {
                    p.attributes.push(LinkAttribute::Mtu(mtu));
                    if noarp {
                        p.header.flags |= LinkFlags::Noarp;
                        p.header.change_mask |= LinkFlags::Noarp;
                    }
                }
            }
        }
    }
    handle.link().add(msg).execute().await
}

/// Sets a link administratively down.
pub async fn set_link_down(handle: &Handle, index: u32) -> Result<(), rtnetlink::Error> {
    let msg = rtnetlink::LinkUnspec::new_with_index(index).down().build();
    handle.link().set(msg).execute().await
}

/// Renames a (down) link.
pub async fn rename_link(handle: &Handle, index: u32, name: &str) -> Result<(), rtnetlink::Error> {
    let msg = rtnetlink::LinkUnspec::new_with_index(index)
        .name(name.to_string())
        .build();
    handle.link().set(msg).execute().await
}

/// `ETH_P_ALL` in network byte order, as the protocol of a tc filter (`protocol all`).
const ETH_P_ALL_BE: u16 = 0x0300;

/// The clsact parent of a filter: egress or ingress.
fn clsact_parent(egress: bool) -> netlink_packet_route::tc::TcHandle {
    use netlink_packet_route::tc::TcHandle;
    TcHandle {
        major: 0xffff,
        minor: if egress {
            TcHandle::MIN_EGRESS
        } else {
            TcHandle::MIN_INGRESS
        },
    }
}

fn tc_message(ifindex: u32) -> netlink_packet_route::tc::TcMessage {
    let mut msg = netlink_packet_route::tc::TcMessage::default();
    msg.header.index = ifindex as i32;
    msg
}

/// Adds the `clsact` qdisc to a link. Returns false when it already had one.
pub async fn add_clsact(handle: &Handle, ifindex: u32) -> Result<bool, rtnetlink::Error> {
    use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
    use netlink_packet_route::{
        tc::{TcAttribute, TcHandle},
        RouteNetlinkMessage,
    };
    let mut msg = tc_message(ifindex);
    msg.header.parent = TcHandle::CLSACT;
    msg.header.handle = TcHandle {
        major: 0xffff,
        minor: 0,
    };
    msg.attributes.push(TcAttribute::Kind("clsact".into()));
    match request_ack(
        handle,
        RouteNetlinkMessage::NewQueueDiscipline(msg),
        NLM_F_CREATE | NLM_F_EXCL,
    )
    .await
    {
        Ok(()) => Ok(true),
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::EEXIST => Ok(false),
        Err(e) => Err(e),
    }
}

/// Removes the `clsact` qdisc of a link (with every filter on it); a missing qdisc or link is fine.
pub async fn delete_clsact(handle: &Handle, ifindex: u32) -> Result<(), rtnetlink::Error> {
    use netlink_packet_route::{tc::TcHandle, RouteNetlinkMessage};
    let mut msg = tc_message(ifindex);
    msg.header.parent = TcHandle::CLSACT;
    msg.header.handle = TcHandle {
        major: 0xffff,
        minor: 0,
    };
    match request_ack(handle, RouteNetlinkMessage::DelQueueDiscipline(msg), 0).await {
        Err(rtnetlink::Error::NetlinkError(e))
            if [-libc::ENOENT, -libc::ENODEV, -libc::EINVAL].contains(&e.raw_code()) =>
        {
            Ok(())
        }
        other => other,
    }
}

/// Where a BPF tc filter sits: its priority and handle on a clsact hook.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FilterSlot {
    /// Egress (true) or ingress hook of clsact.
    pub egress: bool,
    /// Filter priority (`tc filter ... prio`).
    pub priority: u16,
    /// Filter handle.
    pub handle: u32,
}

/// Adds (or replaces) a direct-action BPF filter running the program `prog_fd` (named `name`) at
/// `slot` of the link's clsact qdisc, for every protocol.
pub async fn add_bpf_filter(
    handle: &Handle,
    ifindex: u32,
    slot: FilterSlot,
    prog_fd: std::os::fd::RawFd,
    name: &str,
) -> Result<(), rtnetlink::Error> {
    use netlink_packet_core::NLM_F_CREATE;
    use netlink_packet_route::{
        tc::{TcAttribute, TcBpfFlags, TcFilterBpfOption, TcOption},
        RouteNetlinkMessage,
    };
    const NLM_F_REPLACE: u16 = 0x100;
    let mut msg = tc_message(ifindex);
    msg.header.parent = clsact_parent(slot.egress);
    msg.header.handle = slot.handle.into();
    msg.header.info = (u32::from(slot.priority) << 16) | u32::from(ETH_P_ALL_BE);
    msg.attributes.push(TcAttribute::Kind("bpf".into()));
    msg.attributes.push(TcAttribute::Options(vec![
        TcOption::Bpf(TcFilterBpfOption::ProgFd(prog_fd as u32)),
        TcOption::Bpf(TcFilterBpfOption::ProgName(name.to_string())),
        TcOption::Bpf(TcFilterBpfOption::Flags(TcBpfFlags::DirectAction)),
    ]));
    request_ack(
        handle,
        RouteNetlinkMessage::NewTrafficFilter(msg),
        NLM_F_CREATE | NLM_F_REPLACE,
    )
    .await
}

/// Deletes the filter at `slot`; a missing filter, qdisc or link is fine.
pub async fn delete_filter(
    handle: &Handle,
    ifindex: u32,
    slot: FilterSlot,
) -> Result<(), rtnetlink::Error> {
    use netlink_packet_route::RouteNetlinkMessage;
    let mut msg = tc_message(ifindex);
    msg.header.parent = clsact_parent(slot.egress);
    msg.header.handle = slot.handle.into();
    msg.header.info = (u32::from(slot.priority) << 16) | u32::from(ETH_P_ALL_BE);
    match request_ack(handle, RouteNetlinkMessage::DelTrafficFilter(msg), 0).await {
        Err(rtnetlink::Error::NetlinkError(e))
            if [-libc::ENOENT, -libc::ENODEV, -libc::EINVAL].contains(&e.raw_code()) =>
        {
            Ok(())
        }
        other => other,
    }
}

/// A BPF filter found on a clsact hook.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BpfFilter {
    /// Where it sits.
    pub slot: FilterSlot,
    /// The program's id.
    pub prog_id: u32,
    /// The program name the filter was given.
    pub name: String,
}

/// Every filter on one clsact hook of a link: (slot, BPF program id and name when it is a BPF filter).
/// A link without clsact has none.
pub async fn clsact_filters(
    handle: &Handle,
    ifindex: u32,
    egress: bool,
) -> Result<Vec<(FilterSlot, Option<BpfFilter>)>, rtnetlink::Error> {
    use netlink_packet_core::{NetlinkMessage, NetlinkPayload, NLM_F_DUMP, NLM_F_REQUEST};
    use netlink_packet_route::{
        tc::{TcAttribute, TcFilterBpfOption, TcOption},
        RouteNetlinkMessage,
    };
    let mut msg = tc_message(ifindex);
    msg.header.parent = clsact_parent(egress);
    let mut req = NetlinkMessage::from(RouteNetlinkMessage::GetTrafficFilter(msg));
    req.header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    let mut response = handle.clone().request(req)?;
    let mut out = Vec::new();
    while let Some(msg) = futures::StreamExt::next(&mut response).await {
        match msg.payload {
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewTrafficFilter(f)) => {
                let priority = (f.header.info >> 16) as u16;
                let slot = FilterSlot {
                    egress,
                    priority,
                    handle: f.header.handle.into(),
                };
                if slot.handle == 0 {
                    // The chain's placeholder entry for a priority, not a filter.
                    continue;
                }
                let mut prog_id = None;
                let mut name = String::new();
                for attr in &f.attributes {
                    if let TcAttribute::Options(opts) = attr {
                        for o in opts {
                            match o {
                                TcOption::Bpf(TcFilterBpfOption::ProgId(id)) => prog_id = Some(*id),
                                TcOption::Bpf(TcFilterBpfOption::ProgName(n)) => name = n.clone(),
                                _ => {}
                            }
                        }
                    }
                }
                out.push((
                    slot,
                    prog_id.map(|prog_id| BpfFilter {
                        slot,
                        prog_id,
                        name,
                    }),
                ));
            }
            NetlinkPayload::Error(e) if e.code.is_some() => {
                let code = e.raw_code();
                // No clsact (or no such link): no filters.
                if code == -libc::EINVAL || code == -libc::ENOENT || code == -libc::ENODEV {
                    return Ok(Vec::new());
                }
                return Err(rtnetlink::Error::NetlinkError(e));
            }
            _ => {}
        }
    }
    Ok(out)
}
