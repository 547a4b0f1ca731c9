//! The shipped binaries are static PIEs: no program interpreter (nothing of the node's glibc
//! is loaded at each CNI call, and they run on any node), position-independent (ASLR kept).

use testkit::bins;

/// ELF program header type of the interpreter path (`PT_INTERP`).
const PT_INTERP: u32 = 3;
/// ELF file type of position-independent executables and shared objects (`ET_DYN`).
const ET_DYN: u16 = 3;

/// (ELF type, whether any program header is PT_INTERP) of a 64-bit little-endian ELF file.
fn elf_type_and_interp(bytes: &[u8]) -> (u16, bool) {
    assert_eq!(&bytes[..4], b"\x7fELF", "not an ELF file");
    assert_eq!((bytes[4], bytes[5]), (2, 1), "not 64-bit little-endian");
    let u16_at = |o: usize| u16::from_le_bytes([bytes[o], bytes[o + 1]]);
    let u32_at = |o: usize| u32::from_le_bytes(bytes[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_le_bytes(bytes[o..o + 8].try_into().unwrap());
    let e_type = u16_at(16);
    let phoff = u64_at(32) as usize;
    let phentsize = u16_at(54) as usize;
    let phnum = u16_at(56) as usize;
    let interp = (0..phnum).any(|i| u32_at(phoff + i * phentsize) == PT_INTERP);
    (e_type, interp)
}

#[test]
fn product_binaries_are_static_pies() {
    for name in [
        "multus",
        "ebpf-sbr",
        "multusctl",
        "multus-daemon",
        "multus-shim",
    ] {
        let path = bins::product(name);
        let bytes = std::fs::read(&path).unwrap();
        let (e_type, interp) = elf_type_and_interp(&bytes);
        assert_eq!(
            e_type,
            ET_DYN,
            "{} is not position-independent",
            path.display()
        );
        assert!(
            !interp,
            "{} asks for a dynamic loader (PT_INTERP)",
            path.display()
        );
    }
}

/// Both plugins answer `--version` (and `-v`) on the command line, from the CNI runner, with their
/// own name, without reading stdin or the CNI environment.
#[test]
fn plugins_answer_version_on_the_command_line() {
    for name in ["multus", "ebpf-sbr"] {
        for flag in ["--version", "-v"] {
            let out = std::process::Command::new(bins::product(name))
                .arg(flag)
                .env_remove("CNI_COMMAND")
                .stdin(std::process::Stdio::null())
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "{name} {flag}: {stdout}");
            assert!(
                stdout.starts_with(&format!("{name} {} (CNI ", env!("CARGO_PKG_VERSION"))),
                "{name} {flag}: {stdout}"
            );
            assert!(stdout.contains("1.1.0"), "{name} {flag}: {stdout}");
        }
    }
}
