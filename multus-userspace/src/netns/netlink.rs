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
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
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
    bytes.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// All links of the namespace.
pub async fn links(handle: &Handle) -> Result<Vec<Link>, rtnetlink::Error> {
    let mut out = Vec::new();
    let mut stream = handle.link().get().execute();
    while let Some(msg) = stream.try_next().await? {
        out.push(Link::from_message(&msg));
    }
    Ok(out)
}

/// The link called `name`, if it exists.
pub async fn link_by_name(handle: &Handle, name: &str) -> Result<Option<Link>, rtnetlink::Error> {
    let mut stream = handle.link().get().match_name(name.to_string()).execute();
    match stream.try_next().await {
        Ok(Some(msg)) => Ok(Some(Link::from_message(&msg))),
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
pub async fn addresses(handle: &Handle, index: Option<u32>) -> Result<Vec<Address>, rtnetlink::Error> {
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
            out.push(Address { index: msg.header.index, addr, prefix_len: msg.header.prefix_len });
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
    let mut msg = RouteMessage::default();
    msg.header.address_family = if v6 { AddressFamily::Inet6 } else { AddressFamily::Inet };
    let mut stream = handle.route().get(msg).execute();
    let mut out = Vec::new();
    while let Some(msg) = stream.try_next().await? {
        let table = msg
            .attributes
            .iter()
            .find_map(|a| match a {
                RouteAttribute::Table(t) => Some(*t),
                _ => None,
            })
            .unwrap_or(u32::from(msg.header.table));
        if table != u32::from(libc::RT_TABLE_MAIN) {
            continue;
        }
        let unspecified = if v6 { IpAddr::from([0u16; 8]) } else { IpAddr::from([0u8; 4]) };
        let mut route = Route {
            dst: unspecified,
            prefix_len: msg.header.destination_prefix_length,
            gateway: None,
            oif: None,
            metric: None,
            message: msg.clone(),
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
                _ => {}
            }
        }
        out.push(route);
    }
    Ok(out)
}

/// Makes `default via gateway dev oif` the only default route of its family in the main table.
/// Returns how many other default routes were removed.
pub async fn set_only_default_route(handle: &Handle, gateway: IpAddr, oif: u32) -> Result<usize, rtnetlink::Error> {
    let v6 = gateway.is_ipv6();
    let mut removed = 0;
    for route in main_routes(handle, v6).await? {
        if route.is_default() && !(route.gateway == Some(gateway) && route.oif == Some(oif)) {
            handle.route().del(route.message.clone()).execute().await?;
            removed += 1;
        }
    }
    let exists = main_routes(handle, v6).await?.iter().any(|r| r.is_default() && r.gateway == Some(gateway) && r.oif == Some(oif));
    if !exists {
        let msg = match gateway {
            IpAddr::V4(gw) => rtnetlink::RouteMessageBuilder::<std::net::Ipv4Addr>::new().gateway(gw).output_interface(oif).build(),
            IpAddr::V6(gw) => rtnetlink::RouteMessageBuilder::<std::net::Ipv6Addr>::new().gateway(gw).output_interface(oif).build(),
        };
        handle.route().add(msg).execute().await?;
    }
    Ok(removed)
}
