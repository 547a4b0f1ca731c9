//! Loading, pinning and attaching the BPF programs with aya, and the pod's maps.
//!
//! A pod's programs are loaded once (at its first ADD) and pinned with its maps; later ADDs attach
//! the pinned programs to more interfaces. Attachments are TCX links pinned under the pod's
//! directory, so they outlive the plugin process; removing a link pin detaches the program.

use std::{
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    path::Path,
};

use aya::{
    maps::{Array, HashMap, Map, MapData, PerCpuHashMap, PerCpuValues},
    programs::{
        links::FdLink,
        tc::{SchedClassifier, TcAttachOptions, TcAttachType},
        LinkOrder, ProgramInfo,
    },
    util::KernelVersion,
    EbpfLoader,
};
use multus_common::{names, DefaultRoute, IfCounters, SrcKey, SrcRoute};

use super::{
    pins::{remove_pin, PodDir, ProgKind},
    state::StateMap,
    SbrError,
};

/// aya-log level of the programs when debugging is on (`Level::Debug`); 0 turns logging off and
/// the verifier removes the log calls, since the level is a read-only global.
const DEBUG_LOG_LEVEL: u8 = 4;
/// Size of the log ring buffer when debugging is off (one page: the smallest a ring buffer can be).
const QUIET_LOG_BYTES: u32 = 4096;

/// Map name (in the object) and short pin name of each shared map.
const MAPS: [(&str, &str); 3] =
    [(names::SRC_MAP, "src"), (names::DEFAULTS_MAP, "defaults"), (names::COUNTERS_MAP, "counters")];

fn prog_name(kind: ProgKind) -> &'static str {
    match kind {
        ProgKind::Carrier => names::CARRIER_PROG,
        ProgKind::Egress => names::EGRESS_PROG,
    }
}

fn pin_err(path: &Path) -> impl FnOnce(String) -> SbrError + '_ {
    move |reason| SbrError::Pin { path: path.to_path_buf(), reason }
}

/// Makes sure the pod's programs and maps are loaded and pinned; loads them on the first call.
///
/// `debug` switches the programs' aya-log output on; it only takes effect at that first load.
pub fn ensure_loaded(dir: &PodDir, debug: bool) -> Result<(), SbrError> {
    let loaded = [ProgKind::Carrier, ProgKind::Egress].iter().all(|k| dir.prog(*k).exists())
        && MAPS.iter().all(|(_, pin)| dir.map(pin).exists());
    if loaded {
        StateMap::open_or_create(&dir.map("state"))?;
        return Ok(());
    }
    if !KernelVersion::current().is_ok_and(|v| v >= KernelVersion::new(6, 6, 0)) {
        return Err(SbrError::TcxUnsupported);
    }
    let mut loader = EbpfLoader::new();
    // The programs need no CO-RE relocation, so the kernel BTF is not used (aya 0.14's
    // EbpfLoader::new() still parses it: about 18 ms of every first ADD of a pod).
    loader.btf(None);
    let map_pins: Vec<_> = MAPS.iter().map(|(name, pin)| (*name, dir.map(pin))).collect();
    for (name, path) in &map_pins {
        loader.map_pin_path(name, path.as_path());
    }
    let level: u8 = if debug { DEBUG_LOG_LEVEL } else { 0 };
    loader.override_global(names::LOG_LEVEL, &level, false);
    if !debug {
        loader.map_max_entries(names::LOG_MAP, QUIET_LOG_BYTES);
    }
    let mut ebpf = loader.load(crate::bpf_objects::SBR).map_err(|e| SbrError::Load(e.to_string()))?;
    for kind in [ProgKind::Carrier, ProgKind::Egress] {
        let name = prog_name(kind);
        let prog: &mut SchedClassifier = ebpf
            .program_mut(name)
            .ok_or_else(|| SbrError::Load(format!("program {name} missing from the object")))?
            .try_into()
            .map_err(|e: aya::programs::ProgramError| SbrError::Load(e.to_string()))?;
        prog.load().map_err(|e| SbrError::Load(format!("{name}: {e}")))?;
        let path = dir.prog(kind);
        remove_pin(&path)?;
        prog.pin(&path).map_err(|e| pin_err(&path)(e.to_string()))?;
    }
    StateMap::open_or_create(&dir.map("state"))?;
    Ok(())
}

/// Attaches a pod program to the egress of `ifname` (in the calling thread's namespace) with TCX
/// and pins the link at `pin`, replacing an older pin.
pub fn attach(dir: &PodDir, kind: ProgKind, ifname: &str, pin: &Path) -> Result<(), SbrError> {
    let name = prog_name(kind);
    let attach_err = |reason: String| SbrError::Attach { prog: name, ifname: ifname.to_string(), reason };
    let mut prog = SchedClassifier::from_pin(dir.prog(kind)).map_err(|e| attach_err(e.to_string()))?;
    let id = prog
        .attach_with_options(ifname, TcAttachType::Egress, TcAttachOptions::TcxOrder(LinkOrder::default()))
        .map_err(|e| attach_err(e.to_string()))?;
    let link = prog.take_link(id).map_err(|e| attach_err(e.to_string()))?;
    let fd: FdLink = link.try_into().map_err(|e: aya::programs::links::LinkError| attach_err(e.to_string()))?;
    remove_pin(pin)?;
    fd.pin(pin).map_err(|e| pin_err(pin)(e.to_string()))?;
    Ok(())
}

/// The id of a pinned program.
pub fn prog_id(dir: &PodDir, kind: ProgKind) -> Result<u32, SbrError> {
    let path = dir.prog(kind);
    ProgramInfo::from_pin(&path).map(|i| i.id()).map_err(|e| pin_err(&path)(e.to_string()))
}

/// What a pinned TCX link is attached to (read with `BPF_OBJ_GET_INFO_BY_FD`: aya 0.14 does not
/// expose the TCX part of `bpf_link_info`).
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

/// `BPF_TCX_EGRESS`.
pub const BPF_TCX_EGRESS: u32 = 47;
/// `BPF_LINK_TYPE_TCX`.
const BPF_LINK_TYPE_TCX: u32 = 11;

/// Reads the target of the TCX link pinned at `path`.
pub fn link_target(path: &Path) -> Result<LinkTarget, SbrError> {
    use std::os::unix::ffi::OsStrExt;
    let err = pin_err(path);
    let cpath = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|e| pin_err(path)(e.to_string()))?;

    #[repr(C)]
    struct ObjGet {
        pathname: u64,
        bpf_fd: u32,
        file_flags: u32,
        path_fd: i32,
        pad: u32,
    }
    let attr = ObjGet { pathname: cpath.as_ptr() as u64, bpf_fd: 0, file_flags: 0, path_fd: 0, pad: 0 };
    // SAFETY: BPF_OBJ_GET (7) reads `attr` and the path it points to; both outlive the call.
    let fd = unsafe { libc::syscall(libc::SYS_bpf, 7, &attr as *const ObjGet, std::mem::size_of::<ObjGet>()) };
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
    let rc = unsafe { libc::syscall(libc::SYS_bpf, 15, &attr as *const InfoByFd, std::mem::size_of::<InfoByFd>()) };
    if rc != 0 {
        return Err(pin_err(path)(std::io::Error::last_os_error().to_string()));
    }
    let word = |i: usize| info.0[i];
    // struct bpf_link_info { u32 type, id, prog_id; union (8-aligned, at 16) { tcx { ifindex, attach_type } } }
    if word(0) != BPF_LINK_TYPE_TCX {
        return Err(pin_err(path)(format!("not a TCX link (link type {})", word(0))));
    }
    Ok(LinkTarget { id: word(1), prog_id: word(2), ifindex: word(4), attach_type: word(5) })
}

/// The pod's maps, opened from their pins.
pub struct PodMaps {
    /// Source address -> route.
    pub src: HashMap<MapData, SrcKey, SrcRoute>,
    /// Main default route per family.
    pub defaults: Array<MapData, DefaultRoute>,
    /// Per-interface counters.
    pub counters: PerCpuHashMap<MapData, u32, IfCounters>,
    /// Userspace bookkeeping.
    pub state: StateMap,
}

fn open_map(dir: &PodDir, pin: &str) -> Result<Map, SbrError> {
    let path = dir.map(pin);
    let data = MapData::from_pin(&path).map_err(|e| pin_err(&path)(e.to_string()))?;
    Map::from_map_data(data).map_err(|e| pin_err(&path)(e.to_string()))
}

fn map_err(map: &'static str) -> impl Fn(aya::maps::MapError) -> SbrError {
    move |e| SbrError::Map { map, reason: e.to_string() }
}

/// Treats "no such key" as success (removal is idempotent).
pub fn ignore_missing(r: Result<(), aya::maps::MapError>) -> Result<(), aya::maps::MapError> {
    match r {
        Err(aya::maps::MapError::KeyNotFound) => Ok(()),
        Err(aya::maps::MapError::SyscallError(e)) if e.io_error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

impl PodMaps {
    /// Opens the pinned maps of a pod.
    pub fn open(dir: &PodDir) -> Result<Self, SbrError> {
        Ok(Self {
            src: HashMap::try_from(open_map(dir, "src")?).map_err(map_err("src"))?,
            defaults: Array::try_from(open_map(dir, "defaults")?).map_err(map_err("defaults"))?,
            counters: PerCpuHashMap::try_from(open_map(dir, "counters")?).map_err(map_err("counters"))?,
            state: StateMap::open(&dir.map("state"))?,
        })
    }

    /// Every source entry.
    pub fn entries(&self) -> Vec<(SrcKey, SrcRoute)> {
        self.src.iter().filter_map(Result::ok).collect()
    }

    /// Writes a source entry.
    pub fn put_entry(&mut self, key: SrcKey, route: SrcRoute) -> Result<(), SbrError> {
        self.src.insert(key, route, 0).map_err(map_err("src"))
    }

    /// Removes a source entry (a missing one is fine).
    pub fn remove_entry(&mut self, key: &SrcKey) -> Result<(), SbrError> {
        ignore_missing(self.src.remove(key)).map_err(map_err("src"))
    }

    /// The defaults entry of a family index.
    pub fn default_entry(&self, index: u32) -> Result<DefaultRoute, SbrError> {
        self.defaults.get(&index, 0).map_err(map_err("defaults"))
    }

    /// Writes the defaults entry of a family index.
    pub fn set_default(&mut self, index: u32, value: DefaultRoute) -> Result<(), SbrError> {
        self.defaults.set(index, value, 0).map_err(map_err("defaults"))
    }

    /// Counters of every interface, summed over CPUs.
    pub fn counters(&self) -> Vec<(u32, IfCounters)> {
        let mut out: Vec<(u32, IfCounters)> = self
            .counters
            .iter()
            .filter_map(Result::ok)
            .map(|(ifindex, per_cpu)| {
                let mut sum = IfCounters::default();
                for c in per_cpu.iter() {
                    sum.add(c);
                }
                (ifindex, sum)
            })
            .collect();
        out.sort_by_key(|(i, _)| *i);
        out
    }

    /// Creates zeroed counters for an interface if it has none.
    pub fn ensure_counters(&mut self, ifindex: u32) -> Result<(), SbrError> {
        if self.counters.get(&ifindex, 0).is_ok() {
            return Ok(());
        }
        let cpus = aya::util::nr_cpus().map_err(|(_, e)| SbrError::Map { map: "counters", reason: e.to_string() })?;
        let zero = PerCpuValues::try_from(vec![IfCounters::default(); cpus])
            .map_err(|e| SbrError::Map { map: "counters", reason: e.to_string() })?;
        self.counters.insert(ifindex, zero, 0).map_err(map_err("counters"))
    }

    /// Removes the counters of an interface (missing ones are fine).
    pub fn remove_counters(&mut self, ifindex: u32) -> Result<(), SbrError> {
        ignore_missing(self.counters.remove(&ifindex)).map_err(map_err("counters"))
    }
}
