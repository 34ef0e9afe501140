//! Ethernet/IPv4/UDP framing for the AF_XDP path: reading a query frame and writing
//! its reply headers in place. Pure functions over byte slices.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::ops::Range;

/// Ethernet header length (no VLAN tag: tagged frames are left to the kernel).
pub(super) const ETH_LEN: usize = 14;
/// IPv4 header length without options (replies never carry options).
pub(super) const IPV4_LEN: usize = 20;
/// UDP header length.
pub(super) const UDP_LEN: usize = 8;
/// Where a reply's DNS message starts in its frame.
pub(super) const REPLY_PAYLOAD: usize = ETH_LEN + IPV4_LEN + UDP_LEN;

const ETHERTYPE_IPV4: u16 = 0x0800;
const PROTO_UDP: u8 = 17;
const REPLY_TTL: u8 = 64;

/// A UDP datagram found in a frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Datagram {
    /// Who sent it.
    pub(super) source: SocketAddrV4,
    /// Where it was sent.
    pub(super) destination: SocketAddrV4,
    /// The UDP payload's bytes within the frame.
    pub(super) payload: Range<usize>,
}

fn u16_at(frame: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([frame[at], frame[at + 1]])
}

fn ipv4_at(frame: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::new(frame[at], frame[at + 1], frame[at + 2], frame[at + 3])
}

/// The UDP datagram in an Ethernet frame, or `None` for anything else: not IPv4/UDP,
/// a fragment, or lengths that do not add up.
pub(super) fn parse(frame: &[u8]) -> Option<Datagram> {
    if frame.len() < ETH_LEN + IPV4_LEN + UDP_LEN || u16_at(frame, 12) != ETHERTYPE_IPV4 {
        return None;
    }
    let ip = &frame[ETH_LEN..];
    let header_len = usize::from(ip[0] & 0x0f) * 4;
    if ip[0] >> 4 != 4 || header_len < IPV4_LEN || ip[9] != PROTO_UDP {
        return None;
    }
    // More fragments, or a fragment offset: reassembly is the kernel's job.
    if u16_at(ip, 6) & 0x3fff != 0 {
        return None;
    }
    let total = usize::from(u16_at(ip, 2));
    if total > ip.len() || total < header_len + UDP_LEN {
        return None;
    }
    let udp = ETH_LEN + header_len;
    let udp_len = usize::from(u16_at(frame, udp + 4));
    if udp_len < UDP_LEN || udp_len > total - header_len {
        return None;
    }
    Some(Datagram {
        source: SocketAddrV4::new(ipv4_at(ip, 12), u16_at(frame, udp)),
        destination: SocketAddrV4::new(ipv4_at(ip, 16), u16_at(frame, udp + 2)),
        payload: udp + UDP_LEN..udp + udp_len,
    })
}

/// Turns the query frame into its reply: swaps the Ethernet addresses, writes IPv4 and
/// UDP headers from `query`'s destination back to its source for a payload of
/// `payload_len` bytes already at [`REPLY_PAYLOAD`], with `id` as the IP
/// identification. Returns the frame's new length.
pub(super) fn write_reply(
    frame: &mut [u8],
    query: &Datagram,
    payload_len: usize,
    id: u16,
) -> usize {
    let mut macs = [0u8; 12];
    macs[..6].copy_from_slice(&frame[6..12]);
    macs[6..].copy_from_slice(&frame[..6]);
    frame[..12].copy_from_slice(&macs);
    frame[12..14].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
    let udp_len = (UDP_LEN + payload_len) as u16;
    let total = (IPV4_LEN + usize::from(udp_len)) as u16;
    let (from, to) = (query.destination, query.source);
    let ip = &mut frame[ETH_LEN..ETH_LEN + IPV4_LEN];
    ip[0] = 0x45;
    ip[1] = 0;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip[4..6].copy_from_slice(&id.to_be_bytes());
    ip[6..8].copy_from_slice(&[0, 0]);
    ip[8] = REPLY_TTL;
    ip[9] = PROTO_UDP;
    ip[10..12].copy_from_slice(&[0, 0]);
    ip[12..16].copy_from_slice(&from.ip().octets());
    ip[16..20].copy_from_slice(&to.ip().octets());
    let checksum = !fold(sum(ip, 0));
    ip[10..12].copy_from_slice(&checksum.to_be_bytes());
    let udp = ETH_LEN + IPV4_LEN;
    frame[udp..udp + 2].copy_from_slice(&from.port().to_be_bytes());
    frame[udp + 2..udp + 4].copy_from_slice(&to.port().to_be_bytes());
    frame[udp + 4..udp + 6].copy_from_slice(&udp_len.to_be_bytes());
    frame[udp + 6..udp + 8].copy_from_slice(&[0, 0]);
    let end = udp + usize::from(udp_len);
    let pseudo = sum(&from.ip().octets(), 0)
        + sum(&to.ip().octets(), 0)
        + u32::from(PROTO_UDP)
        + u32::from(udp_len);
    // An all-zero result is sent as all ones (zero means "no checksum", RFC 768).
    let checksum = match !fold(sum(&frame[udp..end], pseudo)) {
        0 => 0xffff,
        value => value,
    };
    frame[udp + 6..udp + 8].copy_from_slice(&checksum.to_be_bytes());
    end
}

/// One's-complement sum of big-endian 16-bit words (an odd last byte padded with zero).
fn sum(bytes: &[u8], initial: u32) -> u32 {
    let mut total = u64::from(initial);
    let mut words = bytes.chunks_exact(2);
    for word in &mut words {
        total += u64::from(u16::from_be_bytes([word[0], word[1]]));
    }
    if let [last] = words.remainder() {
        total += u64::from(*last) << 8;
    }
    while total > u64::from(u32::MAX) {
        total = (total & 0xffff_ffff) + (total >> 32);
    }
    total as u32
}

fn fold(mut total: u32) -> u16 {
    while total > 0xffff {
        total = (total & 0xffff) + (total >> 16);
    }
    total as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame as the kernel would deliver it: 10.0.0.1:4000 → 10.0.0.2:53.
    fn query_frame(payload: &[u8]) -> Vec<u8> {
        let mut frame = vec![0u8; REPLY_PAYLOAD];
        frame[..6].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
        frame[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
        frame[12..14].copy_from_slice(&[0x08, 0x00]);
        let total = (IPV4_LEN + UDP_LEN + payload.len()) as u16;
        frame[14] = 0x45;
        frame[16..18].copy_from_slice(&total.to_be_bytes());
        frame[20] = 0x40; // DF
        frame[22] = 64;
        frame[23] = 17;
        frame[26..30].copy_from_slice(&[10, 0, 0, 1]);
        frame[30..34].copy_from_slice(&[10, 0, 0, 2]);
        frame[34..36].copy_from_slice(&4000u16.to_be_bytes());
        frame[36..38].copy_from_slice(&53u16.to_be_bytes());
        frame[38..40].copy_from_slice(&((UDP_LEN + payload.len()) as u16).to_be_bytes());
        frame.extend_from_slice(payload);
        frame
    }

    #[test]
    fn a_query_frame_is_read_and_its_reply_checks_out() {
        let frame = query_frame(b"abcde");
        let datagram = parse(&frame).expect("a UDP datagram");
        assert_eq!(datagram.source, "10.0.0.1:4000".parse().unwrap());
        assert_eq!(datagram.destination, "10.0.0.2:53".parse().unwrap());
        assert_eq!(&frame[datagram.payload.clone()], b"abcde");

        let mut reply = frame.clone();
        reply.resize(100, 0);
        reply[REPLY_PAYLOAD..REPLY_PAYLOAD + 3].copy_from_slice(b"xyz");
        let len = write_reply(&mut reply, &datagram, 3, 7);
        reply.truncate(len);
        assert_eq!(&reply[..6], &[2, 0, 0, 0, 0, 1]);
        assert_eq!(&reply[6..12], &[2, 0, 0, 0, 0, 2]);
        let back = parse(&reply).expect("the reply parses");
        assert_eq!(back.source, datagram.destination);
        assert_eq!(back.destination, datagram.source);
        assert_eq!(&reply[back.payload], b"xyz");
        // Both checksums verify: the sums over the headers come to all ones.
        assert_eq!(fold(sum(&reply[ETH_LEN..ETH_LEN + IPV4_LEN], 0)), 0xffff);
        let pseudo = sum(&[10, 0, 0, 2, 10, 0, 0, 1], 0) + 17 + (UDP_LEN as u32 + 3);
        assert_eq!(fold(sum(&reply[ETH_LEN + IPV4_LEN..], pseudo)), 0xffff);
    }

    #[test]
    fn anything_but_a_whole_ipv4_udp_datagram_is_left_alone() {
        let good = query_frame(b"abcde");
        let mut fragment = good.clone();
        fragment[20] = 0x20; // more fragments
        let mut tcp = good.clone();
        tcp[23] = 6;
        let mut ipv6 = good.clone();
        ipv6[12..14].copy_from_slice(&[0x86, 0xdd]);
        let mut long_udp = good.clone();
        long_udp[38..40].copy_from_slice(&100u16.to_be_bytes());
        let mut long_ip = good.clone();
        long_ip[16..18].copy_from_slice(&1000u16.to_be_bytes());
        for frame in [fragment, tcp, ipv6, long_udp, long_ip, good[..40].to_vec()] {
            assert_eq!(parse(&frame), None);
        }
    }

    #[test]
    fn the_checksum_matches_a_known_ipv4_header() {
        // The classic example header (checksum field zeroed): 0xb861.
        let header = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(!fold(sum(&header, 0)), 0xb861);
    }
}
