//! A pod's share of the node-wide maps, its own bookkeeping maps, and the attachments: TCX links
//! pinned in the pod's directory, or netlink tc filters on a clsact qdisc (nothing pinned).
//!
//! The node-wide maps are keyed by the pod's network-namespace cookie. The pod keeps its own copy
//! of its source entries (`map-src` in its directory), so that finding, checking and removing them
//! never scans the node's maps.

use crate::cni::ContainerId;
use std::{
    os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd},
    path::Path,
};

use aya::{
    maps::{HashMap, Map, MapData, PerCpuHashMap, PerCpuValues},
    programs::{
        links::FdLink,
        tc::{SchedClassifier, TcAttachOptions, TcAttachType},
        LinkOrder,
    },
};
use multus_common::{
    CounterKey, DefaultKey, DefaultRoute, IfCounters, SrcKey, SrcRoute, DEFAULT_VALID,
};

use super::error::describe;
use super::error::SbrError;
use super::{
    pins::{remove_pin, PodDir},
    programs::{id_hash, ProgKind, Programs},
    state::{IfaceState, PodRecord, RecordMap, StateMap, COUNTED},
};
use crate::netns::netlink::{self as nlh, FilterSlot};

fn pin_err(path: &Path) -> impl FnOnce(String) -> SbrError + '_ {
    move |reason| SbrError::Pin {
        path: path.to_path_buf(),
        reason,
    }
}

fn map_err(map: &'static str) -> impl Fn(aya::maps::MapError) -> SbrError {
    move |e| SbrError::Map {
        map,
        reason: describe(&e),
    }
}

/// Treats "no such key" as success (removal is idempotent).
pub fn ignore_missing(r: Result<(), aya::maps::MapError>) -> Result<(), aya::maps::MapError> {
    match r {
        Err(aya::maps::MapError::KeyNotFound) => Ok(()),
        Err(aya::maps::MapError::SyscallError(e))
            if e.io_error.kind() == std::io::ErrorKind::NotFound =>
        {
            Ok(())
        }
        other => other,
    }
}

/// Attaches a program to the egress of `ifname` (in the calling thread's namespace) with TCX and
/// pins the link at `pin`, replacing an older pin. The kernel waits for an RCU grace period under
/// RTNL in every TCX attach, so this costs milliseconds.
pub fn attach_tcx(
    prog: &mut SchedClassifier,
    kind: ProgKind,
    ifname: &str,
    pin: &Path,
) -> Result<(), SbrError> {
    let attach_err = |reason: String| SbrError::Attach {
        prog: kind.name(),
        ifname: ifname.to_string(),
        reason,
    };
    let id = attach_tcx_after_release(prog, ifname).map_err(|e| attach_err(describe(&e)))?;
    let link = prog.take_link(id).map_err(|e| attach_err(describe(&e)))?;
    let fd: FdLink = link
        .try_into()
        .map_err(|e: aya::programs::links::LinkError| attach_err(describe(&e)))?;
    remove_pin(pin)?;
    fd.pin(pin).map_err(|e| pin_err(pin)(describe(&e)))?;
    Ok(())
}

/// How long a TCX attach waits for an older link of the same program on the same hook to finish
/// its release. Removing a link's last pin releases it in a kernel worker, after an RCU grace
/// period under RTNL, so an attach right after (repairing a removed pin, say) can still find the
/// program there and get EEXIST; on a busy node the worker can take hundreds of milliseconds.
const TCX_RELEASE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The TCX attach, tried again while the kernel answers EEXIST (the program is still attached
/// through a link being released), for at most [`TCX_RELEASE_WAIT`]. A link that stays (one not
/// pinned by SBR) still fails with EEXIST after that.
fn attach_tcx_after_release(
    prog: &mut SchedClassifier,
    ifname: &str,
) -> Result<aya::programs::tc::SchedClassifierLinkId, aya::programs::ProgramError> {
    let started = std::time::Instant::now();
    loop {
        match prog.attach_with_options(
            ifname,
            TcAttachType::Egress,
            TcAttachOptions::TcxOrder(LinkOrder::default()),
        ) {
            Err(aya::programs::ProgramError::SyscallError(e))
                if e.io_error.raw_os_error() == Some(libc::EEXIST)
                    && started.elapsed() < TCX_RELEASE_WAIT =>
            {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            other => return other,
        }
    }
}

/// Where SBR's netlink filters sit on the clsact egress hook: a priority and handle of their own
/// (`tc filter show dev X egress` lists them as `pref 21314 bpf ... handle 0x5342 sbr_egress`).
pub const FILTER_SLOT: FilterSlot = FilterSlot {
    egress: true,
    priority: 0x5342,
    handle: 0x5342,
};

/// Attaches a program to the egress of `ifindex` as a netlink tc filter (adding the clsact qdisc
/// when the link has none). Returns whether the qdisc was added. No RCU grace period is waited for.
pub async fn attach_filter(
    h: &rtnetlink::Handle,
    prog: &SchedClassifier,
    kind: ProgKind,
    ifname: &str,
    ifindex: u32,
) -> Result<bool, SbrError> {
    let attach_err = |reason: String| SbrError::Attach {
        prog: kind.name(),
        ifname: ifname.to_string(),
        reason,
    };
    let added = nlh::add_clsact(h, ifindex)
        .await
        .map_err(|e| attach_err(format!("add clsact: {e}")))?;
    let fd = prog
        .fd()
        .map_err(|e| attach_err(describe(&e)))?
        .as_fd()
        .as_raw_fd();
    if let Err(e) = nlh::add_bpf_filter(h, ifindex, FILTER_SLOT, fd, kind.name()).await {
        if added {
            let _ = nlh::delete_clsact(h, ifindex).await;
        }
        return Err(attach_err(format!("add filter: {e}")));
    }
    Ok(added)
}

/// Removes SBR's filter from `ifindex`, and the clsact qdisc with it when SBR added the qdisc and
/// nothing else is attached to it.
pub async fn detach_filter(
    h: &rtnetlink::Handle,
    ifname: &str,
    ifindex: u32,
    qdisc_added: bool,
) -> Result<(), SbrError> {
    let err = |op: &str| super::error::nl(format!("{op} on {ifname}"));
    nlh::delete_filter(h, ifindex, FILTER_SLOT)
        .await
        .map_err(err("delete SBR filter"))?;
    if qdisc_added {
        let egress = nlh::clsact_filters(h, ifindex, true)
            .await
            .map_err(err("list egress filters"))?;
        let ingress = nlh::clsact_filters(h, ifindex, false)
            .await
            .map_err(err("list ingress filters"))?;
        if egress.is_empty() && ingress.is_empty() {
            nlh::delete_clsact(h, ifindex)
                .await
                .map_err(err("delete clsact"))?;
        }
    }
    Ok(())
}

/// The program id of SBR's filter on the egress of `ifindex`, if there is one.
pub async fn filter_prog(h: &rtnetlink::Handle, ifindex: u32) -> Result<Option<u32>, SbrError> {
    let filters = nlh::clsact_filters(h, ifindex, true)
        .await
        .map_err(super::error::nl(format!(
            "list egress filters of ifindex {ifindex}"
        )))?;
    Ok(filters
        .into_iter()
        .find(|(slot, _)| *slot == FILTER_SLOT)
        .and_then(|(_, f)| f.map(|f| f.prog_id)))
}

/// What a pinned TCX link is attached to (read with `BPF_OBJ_GET_INFO_BY_FD`: aya 0.14 does not
/// expose the TCX part of `bpf_link_info`). For a netlink filter (see
/// [`super::inspect::AttachmentInfo::mode`]) `id` is 0 and `attach_type` is 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkTarget {
    /// Link id.
    pub id: u32,
    /// Program id.
    pub prog_id: u32,
    /// Interface index; 0 once the interface (or its namespace) is gone.
    pub ifindex: u32,
    /// `BPF_TCX_INGRESS` (46) or `BPF_TCX_EGRESS` (47).
    pub attach_type: u32,
}

/// `BPF_TCX_INGRESS`.
pub const BPF_TCX_INGRESS: u32 = 46;
/// `BPF_TCX_EGRESS`.
pub const BPF_TCX_EGRESS: u32 = 47;
/// `BPF_LINK_TYPE_TCX`.
const BPF_LINK_TYPE_TCX: u32 = 11;

/// Reads the target of the TCX link pinned at `path`.
pub fn link_target(path: &Path) -> Result<LinkTarget, SbrError> {
    use std::os::unix::ffi::OsStrExt;
    let err = pin_err(path);
    let cpath = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|e| pin_err(path)(describe(&e)))?;

    #[repr(C)]
    struct ObjGet {
        pathname: u64,
        bpf_fd: u32,
        file_flags: u32,
        path_fd: i32,
        pad: u32,
    }
    let attr = ObjGet {
        pathname: cpath.as_ptr() as u64,
        bpf_fd: 0,
        file_flags: 0,
        path_fd: 0,
        pad: 0,
    };
    // SAFETY: BPF_OBJ_GET (7) reads `attr` and the path it points to; both outlive the call.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            7,
            &attr as *const ObjGet,
            std::mem::size_of::<ObjGet>(),
        )
    };
    if fd < 0 {
        return Err(err(std::io::Error::last_os_error().to_string()));
    }
    // SAFETY: the kernel returned a new descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };

    /// `struct bpf_link_info` is 8-aligned.
    #[repr(C, align(8))]
    struct Info([u32; 32]);
    let mut info = Info([0; 32]);
    #[repr(C)]
    struct InfoByFd {
        bpf_fd: u32,
        info_len: u32,
        info: u64,
    }
    let attr = InfoByFd {
        bpf_fd: fd.as_raw_fd() as u32,
        info_len: std::mem::size_of::<Info>() as u32,
        info: info.0.as_mut_ptr() as u64,
    };
    // SAFETY: BPF_OBJ_GET_INFO_BY_FD (15) writes at most info_len bytes into `info`.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            15,
            &attr as *const InfoByFd,
            std::mem::size_of::<InfoByFd>(),
        )
    };
    if rc != 0 {
        return Err(pin_err(path)(std::io::Error::last_os_error().to_string()));
    }
    let word = |i: usize| info.0[i];
    // struct bpf_link_info { u32 type, id, prog_id; union (8-aligned, at 16) { tcx { ifindex, attach_type } } }
    if word(0) != BPF_LINK_TYPE_TCX {
        return Err(pin_err(path)(format!(
            "not a TCX link (link type {})",
            word(0)
        )));
    }
    Ok(LinkTarget {
        id: word(1),
        prog_id: word(2),
        ifindex: word(4),
        attach_type: word(5),
    })
}

/// The node-wide maps of one program version.
pub struct NodeMaps {
    src: HashMap<MapData, SrcKey, SrcRoute>,
    defaults: HashMap<MapData, DefaultKey, DefaultRoute>,
    counters: PerCpuHashMap<MapData, CounterKey, IfCounters>,
    users: HashMap<MapData, u64, u64>,
}

fn open_map(path: &Path) -> Result<Map, SbrError> {
    let data = MapData::from_pin(path).map_err(|e| pin_err(path)(describe(&e)))?;
    Map::from_map_data(data).map_err(|e| pin_err(path)(describe(&e)))
}

impl NodeMaps {
    /// Opens the pinned maps of `progs`.
    pub fn open(progs: &Programs) -> Result<Self, SbrError> {
        Ok(Self {
            src: HashMap::try_from(open_map(&progs.map("src"))?).map_err(map_err("src"))?,
            defaults: HashMap::try_from(open_map(&progs.map("defaults"))?)
                .map_err(map_err("defaults"))?,
            counters: PerCpuHashMap::try_from(open_map(&progs.map("counters"))?)
                .map_err(map_err("counters"))?,
            users: progs.users()?,
        })
    }

    /// The cookies with a source entry, default or counter (for GC's sweep of unowned entries).
    pub fn cookies(&self) -> std::collections::BTreeSet<u64> {
        let mut out: std::collections::BTreeSet<u64> = self
            .src
            .keys()
            .filter_map(Result::ok)
            .map(|k| k.cookie)
            .collect();
        out.extend(
            self.defaults
                .keys()
                .filter_map(Result::ok)
                .map(|k| k.cookie),
        );
        out.extend(
            self.counters
                .keys()
                .filter_map(Result::ok)
                .map(|k| k.cookie),
        );
        out.extend(self.users.keys().filter_map(Result::ok));
        out
    }

    /// Removes every entry keyed by `cookie` (a full scan: GC only).
    pub fn sweep(&mut self, cookie: u64) -> Result<(), SbrError> {
        for k in self
            .src
            .keys()
            .filter_map(Result::ok)
            .filter(|k| k.cookie == cookie)
            .collect::<Vec<_>>()
        {
            ignore_missing(self.src.remove(&k)).map_err(map_err("src"))?;
        }
        for k in self
            .defaults
            .keys()
            .filter_map(Result::ok)
            .filter(|k| k.cookie == cookie)
            .collect::<Vec<_>>()
        {
            ignore_missing(self.defaults.remove(&k)).map_err(map_err("defaults"))?;
        }
        for k in self
            .counters
            .keys()
            .filter_map(Result::ok)
            .filter(|k| k.cookie == cookie)
            .collect::<Vec<_>>()
        {
            ignore_missing(self.counters.remove(&k)).map_err(map_err("counters"))?;
        }
        ignore_missing(self.users.remove(&cookie)).map_err(map_err("users"))
    }
}

/// The number of possible CPUs (the size of a per-CPU value), read once per process.
fn possible_cpus() -> Result<usize, SbrError> {
    static CPUS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    if let Some(n) = CPUS.get() {
        return Ok(*n);
    }
    let n = aya::util::nr_cpus().map_err(|(_, e)| SbrError::Map {
        map: "counters",
        reason: describe(&e),
    })?;
    Ok(*CPUS.get_or_init(|| n))
}

/// One pod's view of the maps: its cookie, its share of the node-wide maps, and its own maps.
pub struct PodMaps {
    /// The program version the pod uses.
    pub progs: Programs,
    /// The pod record as last read or written.
    pub record: PodRecord,
    record_map: RecordMap,
    node: NodeMaps,
    mirror: HashMap<MapData, SrcKey, SrcRoute>,
    /// Interface records.
    pub state: StateMap,
}

fn mirror_create(pin: &Path) -> Result<HashMap<MapData, SrcKey, SrcRoute>, SbrError> {
    let map = HashMap::<MapData, SrcKey, SrcRoute>::create(256, 0).map_err(map_err("pod src"))?;
    map.pin(pin).map_err(|e| pin_err(pin)(describe(&e)))?;
    HashMap::try_from(open_map(pin)?).map_err(map_err("pod src"))
}

impl PodMaps {
    /// The pod's network-namespace cookie (its record's).
    pub fn cookie(&self) -> u64 {
        self.record.cookie
    }

    /// Creates a pod's maps in `dir` (which must exist) for `record`, and registers the pod as a
    /// user of `progs`.
    pub fn create(
        dir: &PodDir,
        container_id: &ContainerId,
        progs: Programs,
        record: PodRecord,
    ) -> Result<Self, SbrError> {
        let mut node = NodeMaps::open(&progs)?;
        node.users
            .insert(record.cookie, id_hash(container_id), 0)
            .map_err(map_err("users"))?;
        let made = (|| {
            let state = StateMap::create(&dir.map("state"))?;
            let mirror = mirror_create(&dir.map("src"))?;
            // The record last: a directory with a record is a complete pod.
            let record_map = RecordMap::create(&dir.map("pod"), &record)?;
            Ok::<_, SbrError>((state, mirror, record_map))
        })();
        match made {
            Ok((state, mirror, record_map)) => Ok(Self {
                progs,
                record,
                record_map,
                node,
                mirror,
                state,
            }),
            Err(e) => {
                let _ = node.users.remove(&record.cookie);
                Err(e)
            }
        }
    }

    /// Opens the maps of the pod in `dir`.
    pub fn open(dir: &PodDir, bpffs_dir: &Path) -> Result<Self, SbrError> {
        let opened = Self::open_record(dir)?;
        let progs = Programs::at(bpffs_dir, &opened.1.version())?;
        Self::open_with(dir, progs, opened)
    }

    /// Opens the maps of the pod in `dir` with the node-wide maps of `progs`; `opened` is its
    /// record map as [`Self::open_record`] returned it.
    pub fn open_with(
        dir: &PodDir,
        progs: Programs,
        opened: (RecordMap, PodRecord),
    ) -> Result<Self, SbrError> {
        let (record_map, record) = opened;
        let node = NodeMaps::open(&progs)?;
        let mirror = HashMap::try_from(open_map(&dir.map("src"))?).map_err(map_err("pod src"))?;
        let state = StateMap::open(&dir.map("state"))?;
        Ok(Self {
            progs,
            record,
            record_map,
            node,
            mirror,
            state,
        })
    }

    /// Opens the record map of the pod in `dir`, with the record it holds.
    pub fn open_record(dir: &PodDir) -> Result<(RecordMap, PodRecord), SbrError> {
        let map = RecordMap::open(&dir.map("pod"))?;
        let record = map.get()?;
        Ok((map, record))
    }

    /// Reads just the record of the pod in `dir`.
    pub fn read_record(dir: &PodDir) -> Result<PodRecord, SbrError> {
        Self::open_record(dir).map(|(_, record)| record)
    }

    /// Writes the record.
    pub fn set_record(&mut self, record: PodRecord) -> Result<(), SbrError> {
        self.record_map.set(record)?;
        self.record = record;
        Ok(())
    }

    /// Moves the pod to another program version (its own was removed): registers it there and
    /// copies its source entries; defaults, counters and attachments follow when the pod converges.
    pub fn switch_to(
        &mut self,
        container_id: &ContainerId,
        progs: Programs,
    ) -> Result<(), SbrError> {
        let mut node = NodeMaps::open(&progs)?;
        node.users
            .insert(self.cookie(), id_hash(container_id), 0)
            .map_err(map_err("users"))?;
        for (k, r) in self.entries() {
            node.src.insert(k, r, 0).map_err(map_err("src"))?;
        }
        self.node = node;
        let mut record = self.record;
        record.version = PodRecord::new(0, 0, progs.name(), Path::new("")).version;
        self.progs = progs;
        self.set_record(record)?;
        // Counters are recreated at the next attach.
        for (name, st) in self.state.all() {
            if st.flags & COUNTED != 0 {
                self.state.put(
                    &name,
                    IfaceState {
                        flags: st.flags & !COUNTED,
                        ..st
                    },
                )?;
            }
        }
        Ok(())
    }

    /// Every source entry of the pod.
    pub fn entries(&self) -> Vec<(SrcKey, SrcRoute)> {
        self.mirror.iter().filter_map(Result::ok).collect()
    }

    /// Writes a source entry.
    pub fn put_entry(&mut self, key: SrcKey, route: SrcRoute) -> Result<(), SbrError> {
        self.mirror
            .insert(key, route, 0)
            .map_err(map_err("pod src"))?;
        self.node.src.insert(key, route, 0).map_err(map_err("src"))
    }

    /// Removes a source entry (a missing one is fine).
    pub fn remove_entry(&mut self, key: &SrcKey) -> Result<(), SbrError> {
        ignore_missing(self.node.src.remove(key)).map_err(map_err("src"))?;
        ignore_missing(self.mirror.remove(key)).map_err(map_err("pod src"))
    }

    /// Whether the node-wide map holds exactly the pod's entry for `key`.
    pub fn node_entry(&self, key: &SrcKey) -> Option<SrcRoute> {
        self.node.src.get(key, 0).ok()
    }

    fn default_key(&self, index: u32) -> DefaultKey {
        DefaultKey {
            cookie: self.cookie(),
            index,
            reserved: 0,
        }
    }

    /// The pod's defaults entry of a family index (all zero when there is none).
    pub fn default_entry(&self, index: u32) -> Result<DefaultRoute, SbrError> {
        match self.node.defaults.get(&self.default_key(index), 0) {
            Ok(v) => Ok(v),
            Err(aya::maps::MapError::KeyNotFound) => Ok(DefaultRoute::default()),
            Err(e) => Err(map_err("defaults")(e)),
        }
    }

    /// Writes the pod's defaults entry of a family index (an invalid one is removed).
    pub fn set_default(&mut self, index: u32, value: DefaultRoute) -> Result<(), SbrError> {
        let key = self.default_key(index);
        if value.flags & DEFAULT_VALID == 0 {
            ignore_missing(self.node.defaults.remove(&key)).map_err(map_err("defaults"))
        } else {
            self.node
                .defaults
                .insert(key, value, 0)
                .map_err(map_err("defaults"))
        }
    }

    fn counter_key(&self, ifindex: u32) -> CounterKey {
        CounterKey {
            cookie: self.cookie(),
            ifindex,
            reserved: 0,
        }
    }

    /// Counters of every interface of the pod, summed over CPUs, by interface index.
    pub fn counters(&self) -> Vec<(u32, IfCounters)> {
        let mut out: Vec<(u32, IfCounters)> = self
            .state
            .all()
            .into_iter()
            .filter(|(_, st)| st.flags & COUNTED != 0)
            .filter_map(|(_, st)| {
                let per_cpu = self
                    .node
                    .counters
                    .get(&self.counter_key(st.ifindex), 0)
                    .ok()?;
                let mut sum = IfCounters::default();
                for c in per_cpu.iter() {
                    sum.add(c);
                }
                Some((st.ifindex, sum))
            })
            .collect();
        out.sort_by_key(|(i, _)| *i);
        out.dedup_by_key(|(i, _)| *i);
        out
    }

    /// Creates zeroed counters for the pod's interface `ifname` at `ifindex` if it has none, and
    /// records that it has them.
    pub fn ensure_counters(&mut self, ifname: &str, ifindex: u32) -> Result<(), SbrError> {
        let st = self.state.get(ifname).unwrap_or_default();
        // A record at another index loses its old counters here.
        self.put_state(ifname, IfaceState { ifindex, ..st })?;
        let key = self.counter_key(ifindex);
        if self.node.counters.get(&key, 0).is_err() {
            let zero = PerCpuValues::try_from(vec![IfCounters::default(); possible_cpus()?])
                .map_err(|e| SbrError::Map {
                    map: "counters",
                    reason: describe(&e),
                })?;
            self.node
                .counters
                .insert(key, zero, 0)
                .map_err(map_err("counters"))?;
        }
        let st = self.state.get(ifname).unwrap_or_default();
        self.state.put(
            ifname,
            IfaceState {
                ifindex,
                flags: st.flags | COUNTED,
                ..st
            },
        )
    }

    /// Removes the counters of the pod's interface at `ifindex` (missing ones are fine).
    pub fn remove_counters(&mut self, ifindex: u32) -> Result<(), SbrError> {
        ignore_missing(self.node.counters.remove(&self.counter_key(ifindex)))
            .map_err(map_err("counters"))
    }

    /// Writes an interface record. When the record had counters at another index, or loses its
    /// `COUNTED` mark, those counters are removed.
    pub fn put_state(&mut self, ifname: &str, mut st: IfaceState) -> Result<(), SbrError> {
        if let Some(old) = self.state.get(ifname) {
            if old.flags & COUNTED != 0 && (old.ifindex != st.ifindex || st.flags & COUNTED == 0) {
                self.remove_counters(old.ifindex)?;
                st.flags &= !COUNTED;
            }
        }
        self.state.put(ifname, st)
    }

    /// Forgets an interface record (and its counters).
    pub fn remove_state(&mut self, ifname: &str) -> Result<(), SbrError> {
        self.put_state(ifname, IfaceState::default())
    }

    /// Removes everything of the pod from the node-wide maps (entries, defaults, counters) and its
    /// registration as a user of its program version.
    pub fn purge(&mut self) -> Result<(), SbrError> {
        for (k, _) in self.entries() {
            ignore_missing(self.node.src.remove(&k)).map_err(map_err("src"))?;
        }
        for index in [multus_common::DEFAULT_V4, multus_common::DEFAULT_V6] {
            ignore_missing(self.node.defaults.remove(&self.default_key(index)))
                .map_err(map_err("defaults"))?;
        }
        for (_, st) in self.state.all() {
            if st.flags & COUNTED != 0 {
                self.remove_counters(st.ifindex)?;
            }
        }
        ignore_missing(self.node.users.remove(&self.cookie())).map_err(map_err("users"))
    }
}
