//! A pod's userspace bookkeeping, kept in small BPF maps pinned in the pod's directory (so all of
//! a pod's state is under one bpffs directory: DEL and GC need nothing else, and removing the
//! directory forgets everything):
//! - the pod record ([`PodRecord`]): the pod's network-namespace cookie (its key in the node-wide
//!   maps), how its programs are attached, which program version it uses, its namespace path;
//! - the interface records ([`StateMap`]): which interfaces ADD manages (with the index they had),
//!   which rp_filter values SBR changed (with the original, restored on DEL), which interfaces DEL
//!   released while they still existed, and which interfaces have counters in the node-wide map.
//!
//! These types never reach the BPF programs; they are `#[repr(C)]` without padding all the same,
//! because they are stored as BPF map values.

use std::path::Path;

use aya::maps::{Array, HashMap, Map, MapData};

use super::error::describe;
use super::error::SbrError;

/// [`IfaceState::flags`]: ADD manages the interface (its addresses are in the source map).
pub const MANAGED: u32 = 1;
/// [`IfaceState::flags`]: SBR changed the interface's rp_filter; the original is recorded.
pub const RP_FILTER_CHANGED: u32 = 2;
/// [`IfaceState::flags`]: DEL released the interface while it still existed: it gets no program
/// until it is added again (the plugin that made it usually deletes it right after).
pub const RELEASED: u32 = 4;
/// [`IfaceState::flags`]: the node-wide counters map may hold an entry for the pod's interface at
/// [`IfaceState::ifindex`] (removed with the pod, or when the index changes).
pub const COUNTED: u32 = 8;
/// [`IfaceState::flags`]: the pod's program is attached to the interface by a netlink tc filter
/// (on a clsact qdisc).
pub const NL_FILTER: u32 = 16;
/// [`IfaceState::flags`]: SBR added the interface's clsact qdisc (removed with the filter when no
/// other filter is left on it).
pub const NL_QDISC_ADDED: u32 = 32;

/// Key: an interface name, NUL-padded.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IfName(pub [u8; 16]);

impl IfName {
    /// Encodes a (validated, shorter than 16 bytes) name.
    pub fn new(name: &str) -> Self {
        let mut b = [0u8; 16];
        let n = name.len().min(15);
        b[..n].copy_from_slice(&name.as_bytes()[..n]);
        Self(b)
    }

    /// The name.
    pub fn as_string(&self) -> String {
        let end = self.0.iter().position(|b| *b == 0).unwrap_or(16);
        String::from_utf8_lossy(&self.0[..end]).into_owned()
    }
}

/// Value: what SBR knows about one interface.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IfaceState {
    /// Interface index when it was recorded.
    pub ifindex: u32,
    /// `MANAGED`, `RP_FILTER_CHANGED`, `RELEASED`, `COUNTED`, `NL_*` flags.
    pub flags: u32,
    /// The rp_filter value before SBR changed it (with `RP_FILTER_CHANGED`).
    pub rp_filter_orig: u32,
    /// Zero.
    pub reserved: u32,
}

/// [`PodRecord::mode`]: the real interfaces' programs are TCX links pinned in the pod directory.
pub const MODE_TCX: u32 = 1;
/// [`PodRecord::mode`]: every program is a netlink tc filter (clsact); nothing is pinned for them.
pub const MODE_NETLINK: u32 = 2;

/// [`PodRecord::flags`]: the carrier's peer lives in a namespace of its own (the "anchor", mounted
/// on the pod directory's `anchor` pin): dropping that namespace deletes the carrier pair without
/// anyone waiting for it.
pub const POD_ANCHORED: u32 = 1;

/// Length of [`PodRecord::version`].
pub const VERSION_LEN: usize = 32;
/// Length of [`PodRecord::netns`].
pub const NETNS_PATH_LEN: usize = 256;

/// What SBR knows about a pod as a whole.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PodRecord {
    /// The pod's network-namespace cookie: its key in the node-wide maps.
    pub cookie: u64,
    /// [`MODE_TCX`] or [`MODE_NETLINK`].
    pub mode: u32,
    /// `POD_*` flags.
    pub flags: u32,
    /// Name of the program directory the pod uses (NUL-padded).
    pub version: [u8; VERSION_LEN],
    /// The namespace path ADD was given (NUL-padded; empty when longer than the field), so that
    /// inspection and GC can look at the namespace. Checked against the cookie before use.
    pub netns: [u8; NETNS_PATH_LEN],
}

impl Default for PodRecord {
    fn default() -> Self {
        Self {
            cookie: 0,
            mode: 0,
            flags: 0,
            version: [0; VERSION_LEN],
            netns: [0; NETNS_PATH_LEN],
        }
    }
}

fn padded<const N: usize>(s: &str) -> [u8; N] {
    let mut b = [0u8; N];
    if s.len() < N {
        b[..s.len()].copy_from_slice(s.as_bytes());
    }
    b
}

fn unpadded(b: &[u8]) -> String {
    let end = b.iter().position(|c| *c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

impl PodRecord {
    /// A record; a namespace path too long for the field is not kept.
    pub fn new(cookie: u64, mode: u32, version: &str, netns: &Path) -> Self {
        Self {
            cookie,
            mode,
            flags: 0,
            version: padded(version),
            netns: padded(&netns.to_string_lossy()),
        }
    }

    /// The program directory's name.
    pub fn version(&self) -> String {
        unpadded(&self.version)
    }

    /// The namespace path, if one was kept.
    pub fn netns(&self) -> Option<std::path::PathBuf> {
        Some(unpadded(&self.netns))
            .filter(|p| !p.is_empty())
            .map(std::path::PathBuf::from)
    }
}

// SAFETY: #[repr(C)], Copy, no padding (16, 16 and 304 bytes, see the test).
unsafe impl aya::Pod for IfName {}
unsafe impl aya::Pod for IfaceState {}
unsafe impl aya::Pod for PodRecord {}

fn pin_err(pin: &Path) -> impl Fn(String) -> SbrError + '_ {
    move |reason| SbrError::Pin {
        path: pin.to_path_buf(),
        reason,
    }
}

/// The pinned pod record (a one-element array).
pub struct RecordMap {
    map: Array<MapData, PodRecord>,
}

impl RecordMap {
    /// Creates, fills and pins the record.
    pub fn create(pin: &Path, record: &PodRecord) -> Result<Self, SbrError> {
        let mut map = Array::<MapData, PodRecord>::create(1, 0).map_err(record_err)?;
        map.set(0, *record, 0).map_err(record_err)?;
        map.pin(pin).map_err(|e| pin_err(pin)(describe(&e)))?;
        Self::open(pin)
    }

    /// Opens the pinned record.
    pub fn open(pin: &Path) -> Result<Self, SbrError> {
        let data = MapData::from_pin(pin).map_err(|e| pin_err(pin)(describe(&e)))?;
        let map = Array::try_from(Map::Array(data)).map_err(|e| pin_err(pin)(describe(&e)))?;
        Ok(Self { map })
    }

    /// Reads the record.
    pub fn get(&self) -> Result<PodRecord, SbrError> {
        self.map.get(&0, 0).map_err(record_err)
    }

    /// Writes the record.
    pub fn set(&mut self, record: PodRecord) -> Result<(), SbrError> {
        self.map.set(0, record, 0).map_err(record_err)
    }

    /// Pins the record map (pinned at `pinned`) a second time at `pin` (a mount point for the
    /// carrier's anchor).
    pub fn pin_again(pinned: &Path, pin: &Path) -> Result<(), SbrError> {
        let data = MapData::from_pin(pinned).map_err(|e| pin_err(pinned)(describe(&e)))?;
        data.pin(pin).map_err(|e| pin_err(pin)(describe(&e)))
    }
}

fn record_err(e: impl std::error::Error) -> SbrError {
    SbrError::Map {
        map: "pod",
        reason: describe(&e),
    }
}

/// The interface records of one pod.
pub struct StateMap {
    map: HashMap<MapData, IfName, IfaceState>,
}

impl StateMap {
    /// Creates and pins an empty map.
    pub fn create(pin: &Path) -> Result<Self, SbrError> {
        let map = HashMap::<MapData, IfName, IfaceState>::create(64, 0).map_err(map_err)?;
        map.pin(pin).map_err(|e| pin_err(pin)(describe(&e)))?;
        Self::open(pin)
    }

    /// Opens the pinned map.
    pub fn open(pin: &Path) -> Result<Self, SbrError> {
        let data = MapData::from_pin(pin).map_err(map_err)?;
        let map = HashMap::try_from(Map::HashMap(data)).map_err(map_err)?;
        Ok(Self { map })
    }

    /// Every recorded interface.
    pub fn all(&self) -> Vec<(String, IfaceState)> {
        self.map
            .iter()
            .filter_map(Result::ok)
            .map(|(k, v)| (k.as_string(), v))
            .collect()
    }

    /// The record of one interface.
    pub fn get(&self, ifname: &str) -> Option<IfaceState> {
        self.map.get(&IfName::new(ifname), 0).ok()
    }

    /// Writes the record of one interface (removes it when no flag is left).
    pub fn put(&mut self, ifname: &str, state: IfaceState) -> Result<(), SbrError> {
        if state.flags == 0 {
            return self.remove(ifname);
        }
        self.map
            .insert(IfName::new(ifname), state, 0)
            .map_err(map_err)
    }

    /// Forgets one interface (a missing record is fine).
    pub fn remove(&mut self, ifname: &str) -> Result<(), SbrError> {
        super::bpf::ignore_missing(self.map.remove(&IfName::new(ifname))).map_err(map_err)
    }
}

fn map_err(e: impl std::error::Error) -> SbrError {
    SbrError::Map {
        map: "state",
        reason: describe(&e),
    }
}

#[cfg(test)]
mod tests {
    use std::mem::{offset_of, size_of};

    use super::*;

    #[test]
    fn layout_and_names() {
        assert_eq!(size_of::<IfName>(), 16);
        assert_eq!(size_of::<IfaceState>(), 16);
        assert_eq!(IfName::new("net1").as_string(), "net1");
        assert_eq!(
            IfName::new("123456789012345").as_string(),
            "123456789012345"
        );
    }

    #[test]
    fn pod_record_layout() {
        assert_eq!(
            size_of::<PodRecord>(),
            8 + 4 + 4 + VERSION_LEN + NETNS_PATH_LEN
        );
        assert_eq!(offset_of!(PodRecord, mode), 8);
        assert_eq!(offset_of!(PodRecord, version), 16);
        assert_eq!(offset_of!(PodRecord, netns), 16 + VERSION_LEN);
        let r = PodRecord::new(
            7,
            MODE_TCX,
            "_sbr-0123456789abcdef",
            Path::new("/run/netns/x"),
        );
        assert_eq!(r.version(), "_sbr-0123456789abcdef");
        assert_eq!(r.netns(), Some("/run/netns/x".into()));
        let long = "/x".repeat(200);
        assert_eq!(
            PodRecord::new(7, MODE_TCX, "v", Path::new(&long)).netns(),
            None
        );
    }
}
