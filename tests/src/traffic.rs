//! Traffic made by the tests themselves: UDP request/response with the reply's source, ICMP errors
//! seen by a connected socket, a TCP bulk transfer, iperf3 servers that stop with the test.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream, UdpSocket},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::netns::Netns;

/// How a UDP server picks the source of its replies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UdpReply {
    /// `sendto` on a socket bound to the wildcard: the kernel picks the source by route.
    Plain,
    /// `sendmsg` with `IP_PKTINFO`/`IPV6_PKTINFO` naming the address the request came to (DNS servers do this).
    PktInfo,
}

/// A UDP echo server in `ns` bound to `bind` (wildcard address and a port); answers `n` requests.
pub fn udp_echo_server(
    ns: &Netns,
    bind: SocketAddr,
    mode: UdpReply,
    n: usize,
) -> std::thread::JoinHandle<()> {
    let sock = ns.enter(|| UdpSocket::bind(bind).expect("bind udp server"));
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    if mode == UdpReply::PktInfo {
        set_pktinfo(&sock, bind.is_ipv6());
    }
    std::thread::spawn(move || {
        for _ in 0..n {
            match mode {
                UdpReply::Plain => {
                    let mut buf = [0u8; 2048];
                    let Ok((len, from)) = sock.recv_from(&mut buf) else {
                        return;
                    };
                    let _ = sock.send_to(&buf[..len], from);
                }
                UdpReply::PktInfo => {
                    if !echo_with_pktinfo(&sock, bind.is_ipv6()) {
                        return;
                    }
                }
            }
        }
    })
}

fn set_pktinfo(sock: &UdpSocket, v6: bool) {
    use std::os::fd::AsRawFd;
    let one: libc::c_int = 1;
    let (level, opt) = if v6 {
        (libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO)
    } else {
        (libc::IPPROTO_IP, libc::IP_PKTINFO)
    };
    // SAFETY: setsockopt with a valid int option.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            level,
            opt,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of_val(&one) as u32,
        )
    };
    assert_eq!(
        rc,
        0,
        "setsockopt pktinfo: {}",
        std::io::Error::last_os_error()
    );
}

/// Receives one datagram with its destination address (pktinfo) and echoes it from that address.
fn echo_with_pktinfo(sock: &UdpSocket, v6: bool) -> bool {
    use std::os::fd::AsRawFd;
    let fd = sock.as_raw_fd();
    let mut buf = [0u8; 2048];
    let mut cmsg = [0u64; 16];
    // SAFETY: plain recvmsg/sendmsg with buffers that outlive the calls; the control message is
    // the pktinfo the kernel wrote, sent back unchanged.
    unsafe {
        let mut from: libc::sockaddr_storage = std::mem::zeroed();
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_name = (&mut from as *mut libc::sockaddr_storage).cast();
        msg.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as u32;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cmsg.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&cmsg);
        let len = libc::recvmsg(fd, &mut msg, 0);
        if len < 0 {
            return false;
        }
        let c = libc::CMSG_FIRSTHDR(&msg);
        assert!(!c.is_null(), "no pktinfo");
        let want = if v6 {
            (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO)
        } else {
            (libc::IPPROTO_IP, libc::IP_PKTINFO)
        };
        assert_eq!(
            ((*c).cmsg_level, (*c).cmsg_type),
            want,
            "unexpected control message"
        );
        if !v6 {
            // Reply from the address the request was sent to, on no particular interface.
            let info = libc::CMSG_DATA(c) as *mut libc::in_pktinfo;
            (*info).ipi_spec_dst = (*info).ipi_addr;
            (*info).ipi_ifindex = 0;
        } else {
            let info = libc::CMSG_DATA(c) as *mut libc::in6_pktinfo;
            (*info).ipi6_ifindex = 0;
        }
        (*msg.msg_iov).iov_len = len as usize;
        msg.msg_flags = 0;
        libc::sendmsg(fd, &msg, 0) >= 0
    }
}

/// Sends one UDP request from `ns` (optionally bound to `bind`) to `to` on an unconnected socket and
/// returns the source of the reply, or None on timeout.
pub fn udp_request(ns: &Netns, bind: Option<SocketAddr>, to: SocketAddr) -> Option<SocketAddr> {
    let any: SocketAddr = if to.is_ipv6() {
        "[::]:0".parse().expect("addr")
    } else {
        "0.0.0.0:0".parse().expect("addr")
    };
    let sock = ns.enter(|| UdpSocket::bind(bind.unwrap_or(any)).expect("bind udp client"));
    sock.set_read_timeout(Some(Duration::from_millis(1500)))
        .expect("timeout");
    sock.send_to(b"hello", to).expect("send");
    let mut buf = [0u8; 64];
    sock.recv_from(&mut buf).ok().map(|(_, from)| from)
}

/// Sends a datagram from `ns` on a socket connected to `to` (a closed port) and returns what the
/// next receive reports: `ConnectionRefused` when the ICMP port-unreachable came back.
pub fn udp_refused(ns: &Netns, to: SocketAddr) -> std::io::ErrorKind {
    let any: SocketAddr = if to.is_ipv6() {
        "[::]:0".parse().expect("addr")
    } else {
        "0.0.0.0:0".parse().expect("addr")
    };
    let sock = ns.enter(|| UdpSocket::bind(any).expect("bind"));
    sock.connect(to).expect("connect");
    sock.set_read_timeout(Some(Duration::from_millis(1500)))
        .expect("timeout");
    let _ = sock.send(b"anyone?");
    let mut buf = [0u8; 16];
    match sock.recv(&mut buf) {
        Ok(_) => std::io::ErrorKind::Other,
        Err(e) => e.kind(),
    }
}

/// Moves `bytes` over TCP from a server in `server_ns` (listening on `listen`) to a client in
/// `client_ns` connecting to `connect`; returns the achieved rate in Mbit/s, or None on failure.
pub fn tcp_transfer(
    server_ns: &Netns,
    listen: SocketAddr,
    client_ns: &Netns,
    connect: SocketAddr,
    bytes: usize,
) -> Option<f64> {
    let listener = server_ns.enter(|| TcpListener::bind(listen).expect("listen"));
    let server = std::thread::spawn(move || -> std::io::Result<()> {
        let (mut s, _) = listener.accept()?;
        s.set_write_timeout(Some(Duration::from_secs(10)))?;
        let chunk = vec![0x5au8; 64 * 1024];
        let mut left = bytes;
        while left > 0 {
            let n = left.min(chunk.len());
            s.write_all(&chunk[..n])?;
            left -= n;
        }
        Ok(())
    });
    let stream = client_ns.enter(|| TcpStream::connect_timeout(&connect, Duration::from_secs(3)));
    let mut stream = stream.ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    let start = Instant::now();
    let mut got = 0usize;
    let mut buf = vec![0u8; 256 * 1024];
    while got < bytes {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let _ = server.join();
    (got == bytes).then(|| bytes as f64 * 8.0 / secs / 1e6)
}

/// An iperf3 server in a namespace, killed on drop.
pub struct Iperf3Server {
    child: Child,
}

impl Iperf3Server {
    /// Starts `iperf3 -s -p <port>` in `ns` and waits until it listens.
    pub fn start(ns: &Netns, port: u16) -> Self {
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                ns.name(),
                "iperf3",
                "-s",
                "-p",
                &port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("iperf3 is missing: install Debian's iperf3");
        let server = Self { child };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            let out = ns.exec("ss", &["-ltnH", &format!("sport = :{port}")]);
            if !String::from_utf8_lossy(&out.stdout).trim().is_empty() {
                return server;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("iperf3 server did not start in {}", ns.name());
    }
}

impl Drop for Iperf3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs an iperf3 client in `ns` against `dst` and returns the received rate in Gbit/s
/// (`extra` e.g. `["-R"]`, `["-P", "4"]`).
pub fn iperf3(ns: &Netns, dst: &str, port: u16, secs: u32, extra: &[&str]) -> f64 {
    let port = port.to_string();
    let secs = secs.to_string();
    let mut args = vec!["-c", dst, "-p", port.as_str(), "-t", secs.as_str(), "-J"];
    args.extend_from_slice(extra);
    let out = ns.exec("iperf3", &args);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "iperf3 output ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap_or_else(|| panic!("iperf3 failed: {}", v["error"]))
        / 1e9
}

/// Pins the calling thread to CPU 0, so both ends of a ping-pong wake each other on one CPU and
/// the figures compare paths, not scheduler placement.
pub fn pin_to_cpu0() {
    // SAFETY: a zeroed cpu_set_t with one bit set, for the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(0, &mut set);
        assert_eq!(
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set),
            0,
            "affinity"
        );
    }
}

/// UDP request/response: a client in `client` sends 64-byte requests to an echo server in
/// `server` bound to `dst:port`, one at a time, `n` timed round trips after 1000 warm-up ones;
/// both ends on CPU 0. Returns the round-trip times in microseconds.
pub fn udp_pingpong(
    server: &Netns,
    client: &Netns,
    dst: std::net::IpAddr,
    port: u16,
    n: usize,
) -> Vec<f64> {
    let bind = SocketAddr::new(dst, port);
    let srv = server.enter(|| UdpSocket::bind(bind).expect("bind ping-pong server"));
    srv.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let total = n + 1000;
    let echo = std::thread::spawn(move || {
        pin_to_cpu0();
        let mut buf = [0u8; 64];
        for _ in 0..total {
            let Ok((len, from)) = srv.recv_from(&mut buf) else {
                return;
            };
            let _ = srv.send_to(&buf[..len], from);
        }
    });
    let any: SocketAddr = if dst.is_ipv6() {
        "[::]:0".parse().expect("addr")
    } else {
        "0.0.0.0:0".parse().expect("addr")
    };
    let cli = client.enter(|| UdpSocket::bind(any).expect("bind ping-pong client"));
    cli.connect(bind).expect("connect");
    cli.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    // The client runs on its own thread too, so the caller's CPU affinity stays as it was.
    let client_loop = std::thread::spawn(move || {
        pin_to_cpu0();
        let req = [0x5au8; 64];
        let mut buf = [0u8; 64];
        let mut samples = Vec::with_capacity(n);
        for i in 0..total {
            let start = Instant::now();
            cli.send(&req).expect("send");
            cli.recv(&mut buf).expect("pong (is the path working?)");
            if i >= 1000 {
                samples.push(start.elapsed().as_secs_f64() * 1e6);
            }
        }
        samples
    });
    let samples = client_loop.join().expect("ping-pong client");
    let _ = echo.join();
    samples
}
