//! Per-interface bookkeeping that only userspace reads: which interfaces ADD manages (with the
//! index they had), which rp_filter values SBR changed (with the original, restored on DEL), and
//! which interfaces DEL released while they still existed.
//!
//! It lives in a standalone BPF hash map pinned beside the pod's other pins, so all of a pod's
//! state is under one bpffs directory: DEL and GC need nothing else, and removing the directory
//! forgets everything.

use std::path::Path;

use aya::maps::{HashMap, Map, MapData};

use super::SbrError;

/// [`IfaceState::flags`]: ADD manages the interface (its addresses are in the source map).
pub const MANAGED: u32 = 1;
/// [`IfaceState::flags`]: SBR changed the interface's rp_filter; the original is recorded.
pub const RP_FILTER_CHANGED: u32 = 2;
/// [`IfaceState::flags`]: DEL released the interface while it still existed: it gets no program
/// until it is added again (the plugin that made it usually deletes it right after).
pub const RELEASED: u32 = 4;

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
    /// `MANAGED`, `RP_FILTER_CHANGED` and `RELEASED` flags.
    pub flags: u32,
    /// The rp_filter value before SBR changed it (with `RP_FILTER_CHANGED`).
    pub rp_filter_orig: u32,
    /// Zero.
    pub reserved: u32,
}

// SAFETY: #[repr(C)], Copy, no padding (16 and 16 bytes, see the test).
unsafe impl aya::Pod for IfName {}
unsafe impl aya::Pod for IfaceState {}

/// The state map of one pod.
pub struct StateMap {
    map: HashMap<MapData, IfName, IfaceState>,
}

impl StateMap {
    /// Opens the pinned map, or creates and pins it.
    pub fn open_or_create(pin: &Path) -> Result<Self, SbrError> {
        if pin.exists() {
            return Self::open(pin);
        }
        let map = HashMap::<MapData, IfName, IfaceState>::create(64, 0).map_err(map_err)?;
        map.pin(pin).map_err(|e| SbrError::Pin { path: pin.to_path_buf(), reason: e.to_string() })?;
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
        self.map.iter().filter_map(Result::ok).map(|(k, v)| (k.as_string(), v)).collect()
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
        self.map.insert(IfName::new(ifname), state, 0).map_err(map_err)
    }

    /// Forgets one interface (a missing record is fine).
    pub fn remove(&mut self, ifname: &str) -> Result<(), SbrError> {
        super::bpf::ignore_missing(self.map.remove(&IfName::new(ifname))).map_err(map_err)
    }
}

fn map_err(e: impl std::fmt::Display) -> SbrError {
    SbrError::Map { map: "state", reason: e.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_and_names() {
        assert_eq!(std::mem::size_of::<IfName>(), 16);
        assert_eq!(std::mem::size_of::<IfaceState>(), 16);
        assert_eq!(IfName::new("net1").as_string(), "net1");
        assert_eq!(IfName::new("123456789012345").as_string(), "123456789012345");
    }
}
