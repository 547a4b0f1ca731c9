//! The three structure offsets the programs need to find a packet's network namespace
//! (`sk_buff.dev`, `net_device.nd_net.net`, `net.net_cookie`), read from the running kernel's BTF
//! (`/sys/kernel/btf/vmlinux`). Only what that needs is parsed: the type table, structure and union
//! members (through anonymous members and typedefs), and names.
//!
//! It runs once per node, when the programs are loaded (a few milliseconds for the ~150 000 types
//! of a distribution kernel).

use std::path::Path;

use super::error::describe;
use super::error::SbrError;

/// The kernel's BTF.
pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// Byte offsets the programs read a packet's network-namespace cookie with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetnsOffsets {
    /// `offsetof(struct sk_buff, dev)`.
    pub skb_dev: u32,
    /// Offset of the `struct net *` in `struct net_device` (`nd_net.net`).
    pub dev_net: u32,
    /// `offsetof(struct net, net_cookie)`.
    pub net_cookie: u32,
}

const BTF_MAGIC: u16 = 0xeb9f;
const KIND_INT: u32 = 1;
const KIND_ARRAY: u32 = 3;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_ENUM: u32 = 6;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
const KIND_FUNC_PROTO: u32 = 13;
const KIND_VAR: u32 = 14;
const KIND_DATASEC: u32 = 15;
const KIND_DECL_TAG: u32 = 17;
const KIND_TYPE_TAG: u32 = 18;
const KIND_ENUM64: u32 = 19;

fn btf_err(reason: impl Into<String>) -> SbrError {
    SbrError::Unsupported(format!("kernel BTF ({VMLINUX_BTF}): {}", reason.into()))
}

/// A parsed BTF blob: where each type starts, and the string section.
struct Btf<'a> {
    types: &'a [u8],
    strings: &'a [u8],
    /// Start of each type in `types`, by type id (id 0 is `void`).
    starts: Vec<u32>,
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    b.get(off..off + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

/// One member of a structure or union.
struct Member {
    name_off: u32,
    type_id: u32,
    /// Offset in bits.
    bit_offset: u32,
}

impl<'a> Btf<'a> {
    fn parse(data: &'a [u8]) -> Result<Self, SbrError> {
        let hdr = |off: usize| u32_at(data, off).ok_or_else(|| btf_err("truncated header"));
        if data.len() < 24 || u16::from_le_bytes([data[0], data[1]]) != BTF_MAGIC {
            return Err(btf_err("not little-endian BTF"));
        }
        let hdr_len = hdr(4)? as usize;
        let (type_off, type_len, str_off, str_len) = (
            hdr(8)? as usize,
            hdr(12)? as usize,
            hdr(16)? as usize,
            hdr(20)? as usize,
        );
        let section = |off: usize, len: usize| {
            data.get(hdr_len + off..hdr_len + off + len)
                .ok_or_else(|| btf_err("section out of bounds"))
        };
        let types = section(type_off, type_len)?;
        let strings = section(str_off, str_len)?;
        let mut starts = vec![0u32];
        let mut pos = 0usize;
        while pos < types.len() {
            let info = u32_at(types, pos + 4).ok_or_else(|| btf_err("truncated type"))?;
            let vlen = (info & 0xffff) as usize;
            let kind = (info >> 24) & 0x1f;
            let extra = match kind {
                KIND_INT | KIND_VAR | KIND_DECL_TAG => 4,
                KIND_ARRAY => 12,
                KIND_STRUCT | KIND_UNION | KIND_DATASEC | KIND_ENUM64 => 12 * vlen,
                KIND_ENUM | KIND_FUNC_PROTO => 8 * vlen,
                _ => 0,
            };
            starts.push(pos as u32);
            pos += 12 + extra;
        }
        Ok(Self {
            types,
            strings,
            starts,
        })
    }

    fn name(&self, off: u32) -> &[u8] {
        let s = self.strings.get(off as usize..).unwrap_or_default();
        &s[..s.iter().position(|b| *b == 0).unwrap_or(s.len())]
    }

    /// (name offset, info, size-or-type) of a type.
    fn header(&self, id: u32) -> Option<(u32, u32, u32)> {
        let p = *self.starts.get(id as usize)? as usize;
        Some((
            u32_at(self.types, p)?,
            u32_at(self.types, p + 4)?,
            u32_at(self.types, p + 8)?,
        ))
    }

    fn kind(info: u32) -> u32 {
        (info >> 24) & 0x1f
    }

    fn members(&self, id: u32) -> Vec<Member> {
        let Some((_, info, _)) = self.header(id) else {
            return Vec::new();
        };
        let kind_flag = info >> 31 == 1;
        let p = self.starts[id as usize] as usize + 12;
        (0..(info & 0xffff) as usize)
            .filter_map(|i| {
                let m = p + 12 * i;
                let raw = u32_at(self.types, m + 8)?;
                Some(Member {
                    name_off: u32_at(self.types, m)?,
                    type_id: u32_at(self.types, m + 4)?,
                    bit_offset: if kind_flag { raw & 0x00ff_ffff } else { raw },
                })
            })
            .collect()
    }

    /// Follows typedefs and qualifiers to the underlying type.
    fn resolve(&self, mut id: u32) -> u32 {
        for _ in 0..32 {
            match self.header(id) {
                Some((_, info, next))
                    if matches!(
                        Self::kind(info),
                        KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG
                    ) =>
                {
                    id = next
                }
                _ => break,
            }
        }
        id
    }

    /// The structure named `name`.
    fn struct_named(&self, name: &str) -> Result<u32, SbrError> {
        (1..self.starts.len() as u32)
            .find(|id| {
                self.header(*id).is_some_and(|(name_off, info, _)| {
                    Self::kind(info) == KIND_STRUCT
                        && info & 0xffff != 0
                        && self.name(name_off) == name.as_bytes()
                })
            })
            .ok_or_else(|| btf_err(format!("no struct {name}")))
    }

    /// Byte offset and type of member `name` of the structure or union `id`, looking through
    /// anonymous structure and union members.
    fn member(&self, id: u32, name: &str) -> Option<(u32, u32)> {
        for m in self.members(id) {
            if self.name(m.name_off) == name.as_bytes() {
                return Some((m.bit_offset / 8, m.type_id));
            }
            if m.name_off == 0 {
                let inner = self.resolve(m.type_id);
                if self.header(inner).is_some_and(|(_, info, _)| {
                    matches!(Self::kind(info), KIND_STRUCT | KIND_UNION)
                }) {
                    if let Some((off, ty)) = self.member(inner, name) {
                        return Some((m.bit_offset / 8 + off, ty));
                    }
                }
            }
        }
        None
    }

    fn offset(&self, struct_name: &str, path: &[&str]) -> Result<u32, SbrError> {
        let mut id = self.struct_named(struct_name)?;
        let mut total = 0;
        for field in path {
            let (off, ty) = self
                .member(id, field)
                .ok_or_else(|| btf_err(format!("no member {field} in struct {struct_name}")))?;
            total += off;
            id = self.resolve(ty);
        }
        Ok(total)
    }
}

/// Reads the offsets from a BTF file.
pub fn netns_offsets(path: &Path) -> Result<NetnsOffsets, SbrError> {
    let data = std::fs::read(path).map_err(|e| btf_err(describe(&e)))?;
    let btf = Btf::parse(&data)?;
    Ok(NetnsOffsets {
        skb_dev: btf.offset("sk_buff", &["dev"])?,
        dev_net: btf.offset("net_device", &["nd_net", "net"])?,
        net_cookie: btf.offset("net", &["net_cookie"])?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The running kernel's offsets (every machine of the project has BTF): `sk_buff.dev` sits
    /// after the two list pointers, the others vary by configuration.
    #[test]
    fn offsets_of_the_running_kernel() {
        let o = netns_offsets(Path::new(VMLINUX_BTF)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(o.skb_dev, 16, "{o:?}");
        assert!(o.dev_net > 0 && o.dev_net.is_multiple_of(8), "{o:?}");
        assert!(o.net_cookie > 0 && o.net_cookie.is_multiple_of(8), "{o:?}");
    }

    #[test]
    fn rejects_garbage() {
        assert!(Btf::parse(&[0u8; 10]).is_err());
        assert!(Btf::parse(&[
            0x9f, 0xeb, 1, 0, 24, 0, 0, 0, 0, 0, 0, 0, 200, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0
        ])
        .is_err());
    }
}
