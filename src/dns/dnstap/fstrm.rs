//! Frame Streams (the transport of dnstap), bidirectional over a Unix socket, as
//! fstrm's writers speak it: READY → ACCEPT → START, data frames, STOP → FINISH.

use std::io::{self, Read, Write};

/// The content type every frame carries.
pub(super) const CONTENT_TYPE: &[u8] = b"protobuf:dnstap.Dnstap";

const ACCEPT: u32 = 0x01;
const START: u32 = 0x02;
const STOP: u32 = 0x03;
const READY: u32 = 0x04;
const FINISH: u32 = 0x05;
const FIELD_CONTENT_TYPE: u32 = 0x01;
/// Largest control frame accepted from the reader.
const MAX_CONTROL: u32 = 512;

/// A control frame with the dnstap content type.
pub(super) fn control(kind: u32, with_content_type: bool) -> Vec<u8> {
    let mut body = kind.to_be_bytes().to_vec();
    if with_content_type {
        body.extend_from_slice(&FIELD_CONTENT_TYPE.to_be_bytes());
        body.extend_from_slice(&(CONTENT_TYPE.len() as u32).to_be_bytes());
        body.extend_from_slice(CONTENT_TYPE);
    }
    let mut frame = 0u32.to_be_bytes().to_vec();
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend(body);
    frame
}

/// Reads one control frame; its type.
fn read_control(stream: &mut impl Read) -> io::Result<u32> {
    let mut word = [0u8; 4];
    stream.read_exact(&mut word)?;
    if u32::from_be_bytes(word) != 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "expected a control frame",
        ));
    }
    stream.read_exact(&mut word)?;
    let len = u32::from_be_bytes(word);
    if !(4..=MAX_CONTROL).contains(&len) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "bad control frame length",
        ));
    }
    let mut body = vec![0u8; len as usize];
    stream.read_exact(&mut body)?;
    Ok(u32::from_be_bytes([body[0], body[1], body[2], body[3]]))
}

/// Opens the stream: READY, wait for ACCEPT, START.
pub(super) fn handshake(stream: &mut (impl Read + Write)) -> io::Result<()> {
    stream.write_all(&control(READY, true))?;
    match read_control(stream)? {
        ACCEPT => {}
        other => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("expected ACCEPT, got control frame {other}"),
            ));
        }
    }
    stream.write_all(&control(START, true))
}

/// Appends one data frame (length, payload) to `out`.
pub(super) fn data_frame(payload: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
}

/// Closes the stream: STOP, then wait for FINISH.
pub(super) fn finish(stream: &mut (impl Read + Write)) -> io::Result<()> {
    stream.write_all(&control(STOP, false))?;
    match read_control(stream)? {
        FINISH => Ok(()),
        other => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("expected FINISH, got control frame {other}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_frames_are_escaped_and_typed() {
        let ready = control(READY, true);
        assert_eq!(&ready[..4], &[0, 0, 0, 0]);
        let len = u32::from_be_bytes(ready[4..8].try_into().unwrap()) as usize;
        assert_eq!(len, ready.len() - 8);
        assert_eq!(read_control(&mut &ready[..]).unwrap(), READY);
        assert_eq!(&ready[ready.len() - CONTENT_TYPE.len()..], CONTENT_TYPE);
        let mut data = Vec::new();
        data_frame(b"abc", &mut data);
        assert_eq!(data, [0, 0, 0, 3, b'a', b'b', b'c']);
    }
}
