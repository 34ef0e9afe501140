//! The XDP program that steers DNS queries into the AF_XDP sockets, and the few
//! `bpf(2)` calls it needs (map, program, link), made directly: the program is a
//! couple of dozen instructions, assembled here rather than compiled from C.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_LINK_CREATE: libc::c_long = 28;

const BPF_MAP_TYPE_XSKMAP: u32 = 17;
const BPF_PROG_TYPE_XDP: u32 = 6;
const BPF_XDP: u32 = 37;
const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;

const XDP_PASS: i32 = 2;
const BPF_FUNC_REDIRECT_MAP: i32 = 51;
const BPF_PSEUDO_MAP_FD: u8 = 1;

/// How the program was attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AttachMode {
    /// In the driver (native XDP).
    Driver,
    /// In the generic network stack (any device, including `lo`; copies).
    Generic,
}

/// One eBPF instruction.
#[derive(Clone, Copy)]
#[repr(C)]
struct Insn {
    code: u8,
    regs: u8,
    off: i16,
    imm: i32,
}

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: dst | (src << 4),
        off,
        imm,
    }
}

// Opcodes (class | size/op | source).
const LDX_W: u8 = 0x61;
const LDX_H: u8 = 0x69;
const LDX_B: u8 = 0x71;
const MOV64_X: u8 = 0xbf;
const MOV64_K: u8 = 0xb7;
const ADD64_K: u8 = 0x07;
const AND64_K: u8 = 0x57;
const JGT_X: u8 = 0x2d;
const JNE_K: u8 = 0x55;
const JNE32_K: u8 = 0x56;
const LD_IMM64: u8 = 0x18;
const CALL: u8 = 0x85;
const EXIT: u8 = 0x95;

/// The program: an untagged IPv4 UDP datagram without options or fragmentation,
/// to `port` (and `addr`, if given), goes to the socket of its receive queue in
/// `map`; everything else, and any queue without a socket, to the kernel.
fn program(addr: Option<Ipv4Addr>, port: u16, map: RawFd) -> Vec<Insn> {
    // Loaded halfwords and words are in network order read as little endian.
    let port_le = i32::from(port.swap_bytes());
    let mut code = vec![
        insn(MOV64_X, 6, 1, 0, 0), // r6 = ctx
        insn(LDX_W, 2, 1, 0, 0),   // r2 = data
        insn(LDX_W, 3, 1, 4, 0),   // r3 = data_end
        insn(MOV64_X, 4, 2, 0, 0),
        insn(ADD64_K, 4, 0, 0, 42), // eth + ip + udp
        insn(JGT_X, 4, 3, 0, 0),    // → pass (offset patched below)
        insn(LDX_H, 5, 2, 12, 0),
        insn(JNE_K, 5, 0, 0, 0x0008), // ethertype IPv4
        insn(LDX_B, 5, 2, 14, 0),
        insn(JNE_K, 5, 0, 0, 0x45), // version 4, no options
        insn(LDX_B, 5, 2, 23, 0),
        insn(JNE_K, 5, 0, 0, 17), // UDP
        insn(LDX_H, 5, 2, 20, 0),
        insn(AND64_K, 5, 0, 0, 0xff3f), // MF and fragment offset
        insn(JNE_K, 5, 0, 0, 0),
        insn(LDX_H, 5, 2, 36, 0),
        insn(JNE_K, 5, 0, 0, port_le),
    ];
    if let Some(addr) = addr {
        code.push(insn(LDX_W, 5, 2, 30, 0));
        code.push(insn(JNE32_K, 5, 0, 0, i32::from_le_bytes(addr.octets())));
    }
    code.extend([
        insn(LDX_W, 2, 6, 16, 0), // r2 = rx_queue_index
        insn(LD_IMM64, 1, BPF_PSEUDO_MAP_FD, 0, map),
        insn(0, 0, 0, 0, 0),
        insn(MOV64_K, 3, 0, 0, XDP_PASS), // no socket for the queue: pass
        insn(CALL, 0, 0, 0, BPF_FUNC_REDIRECT_MAP),
        insn(EXIT, 0, 0, 0, 0),
    ]);
    let pass = code.len();
    code.extend([insn(MOV64_K, 0, 0, 0, XDP_PASS), insn(EXIT, 0, 0, 0, 0)]);
    for (at, ins) in code.iter_mut().enumerate() {
        if matches!(ins.code, JGT_X | JNE_K | JNE32_K) {
            ins.off = (pass - at - 1) as i16;
        }
    }
    code
}

/// `bpf(cmd, attr)` with `attr` a zero-padded `union bpf_attr`.
fn bpf(cmd: libc::c_long, attr: &mut [u64; 16]) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a valid, large enough `bpf_attr` for every command used here.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr.as_mut_ptr(),
            std::mem::size_of_val(attr) as libc::c_uint,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn fd_from(ret: libc::c_long) -> OwnedFd {
    // SAFETY: the kernel just returned this new descriptor; nothing else owns it.
    unsafe { OwnedFd::from_raw_fd(ret as RawFd) }
}

fn pair(low: u32, high: u32) -> u64 {
    u64::from(low) | (u64::from(high) << 32)
}

/// An XSKMAP with room for `entries` receive queues.
pub(super) fn create_map(entries: u32) -> io::Result<OwnedFd> {
    let mut attr = [0u64; 16];
    attr[0] = pair(BPF_MAP_TYPE_XSKMAP, 4); // map_type, key_size
    attr[1] = pair(4, entries); // value_size, max_entries
    bpf(BPF_MAP_CREATE, &mut attr).map(fd_from)
}

/// Puts the AF_XDP socket `xsk` in `map` for receive queue `queue`.
pub(super) fn set_socket(map: &OwnedFd, queue: u32, xsk: RawFd) -> io::Result<()> {
    let key = queue;
    let value = xsk as u32;
    let mut attr = [0u64; 16];
    attr[0] = u64::from(map.as_raw_fd() as u32);
    attr[1] = &key as *const u32 as u64;
    attr[2] = &value as *const u32 as u64;
    bpf(BPF_MAP_UPDATE_ELEM, &mut attr).map(|_| ())
}

/// Loads the steering program for `addr`:`port` over `map`; the verifier's log is in
/// the error if it refuses.
pub(super) fn load_program(
    addr: Option<Ipv4Addr>,
    port: u16,
    map: &OwnedFd,
) -> io::Result<OwnedFd> {
    let code = program(addr, port, map.as_raw_fd());
    let license = c"Dual MIT/GPL";
    let mut log = vec![0u8; 64 * 1024];
    let mut attr = [0u64; 16];
    attr[0] = pair(BPF_PROG_TYPE_XDP, code.len() as u32);
    attr[1] = code.as_ptr() as u64;
    attr[2] = license.as_ptr() as u64;
    attr[3] = pair(1, log.len() as u32); // log_level, log_size
    attr[4] = log.as_mut_ptr() as u64;
    // prog_name at byte 48 (attr[6..8]); expected_attach_type at byte 68.
    attr[6] = u64::from_le_bytes(*b"failover");
    attr[7] = u64::from_le_bytes(*b"d_dns\0\0\0");
    attr[8] = pair(0, BPF_XDP);
    bpf(BPF_PROG_LOAD, &mut attr).map(fd_from).map_err(|error| {
        let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
        let log = String::from_utf8_lossy(&log[..end]);
        io::Error::new(error.kind(), format!("{error}; verifier: {}", log.trim()))
    })
}

/// Attaches `program` to interface `ifindex`, in the driver if it can take it, else
/// generically. The attachment lasts as long as the returned link descriptor: it is
/// gone when the process exits, however it exits.
pub(super) fn attach(program: &OwnedFd, ifindex: u32) -> io::Result<(OwnedFd, AttachMode)> {
    let link = |flags| {
        let mut attr = [0u64; 16];
        attr[0] = pair(program.as_raw_fd() as u32, ifindex);
        attr[1] = pair(BPF_XDP, flags);
        bpf(BPF_LINK_CREATE, &mut attr).map(fd_from)
    };
    match link(XDP_FLAGS_DRV_MODE) {
        Ok(fd) => Ok((fd, AttachMode::Driver)),
        Err(_) => link(XDP_FLAGS_SKB_MODE).map(|fd| (fd, AttachMode::Generic)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_jump_lands_on_the_pass_exit() {
        for addr in [None, Some(Ipv4Addr::LOCALHOST)] {
            let code = program(addr, 5353, 3);
            let pass = code.len() - 2;
            for (at, ins) in code.iter().enumerate() {
                if matches!(ins.code, JGT_X | JNE_K | JNE32_K) {
                    assert_eq!(at + 1 + ins.off as usize, pass);
                }
            }
            assert_eq!(code[pass].imm, XDP_PASS);
        }
    }
}
