//! One TCP connection: 2-byte length framing, pipelined queries answered in order,
//! the idle timeout and edns-tcp-keepalive.

use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, sleep_until, timeout_at};
use tokio_util::sync::CancellationToken;

use super::Context;
use crate::dns::answers::Snapshot;
use crate::dns::dnstap::Protocol as DnstapProtocol;
use crate::dns::engine::servfail::write_servfail;
use crate::dns::engine::{Outcome, Responder, Transport};

/// Buffer capacity a connection starts with (and shrinks back to after a large
/// message).
const INITIAL_BUFFER: usize = 1024;

/// Buffers larger than this are shrunk once written, so an idle connection that
/// once carried a large answer does not keep it.
const KEPT_BUFFER: usize = 16 * 1024;

/// Serves one connection until the client closes it, the idle timeout passes
/// without a complete query, or `cancel` fires.
pub(super) async fn serve(
    mut stream: TcpStream,
    peer: SocketAddr,
    context: &Context,
    seed: u64,
    cancel: CancellationToken,
) {
    let idle = context.idle_timeout;
    let mut responder = Responder::new(seed);
    responder.tcp_keepalive = Some((idle.as_millis() / 100).min(u128::from(u16::MAX)) as u16);
    let mut input: Vec<u8> = Vec::with_capacity(INITIAL_BUFFER);
    let mut output: Vec<u8> = Vec::with_capacity(INITIAL_BUFFER);
    let mut answer: Vec<u8> = Vec::with_capacity(INITIAL_BUFFER);
    let mut deadline = Instant::now() + idle;
    loop {
        let consumed = answer_frames(
            context,
            &mut responder,
            peer,
            &input,
            &mut answer,
            &mut output,
        );
        if consumed > 0 {
            input.drain(..consumed);
        }
        if !output.is_empty() {
            let write = tokio::select! {
                _ = cancel.cancelled() => return,
                write = timeout_at(Instant::now() + idle, stream.write_all(&output)) => write,
            };
            match write {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return,
                Err(_) => {
                    context.counters.tcp_timeout();
                    return;
                }
            }
            output.clear();
            output.shrink_to(KEPT_BUFFER);
            answer.shrink_to(KEPT_BUFFER);
            deadline = Instant::now() + idle;
        }
        // Room for the rest of a partial frame, or for the next few queries.
        let wanted = match input.get(..2) {
            Some(prefix) => 2 + usize::from(u16::from_be_bytes([prefix[0], prefix[1]])),
            None => 2,
        };
        input.reserve(wanted.saturating_sub(input.len()).max(512));
        let read = tokio::select! {
            _ = cancel.cancelled() => return,
            _ = sleep_until(deadline) => {
                context.counters.tcp_timeout();
                return;
            }
            read = stream.read_buf(&mut input) => read,
        };
        match read {
            Ok(0) => {
                // Half-closed by the client: answer what is complete, then close.
                let consumed = answer_frames(
                    context,
                    &mut responder,
                    peer,
                    &input,
                    &mut answer,
                    &mut output,
                );
                input.drain(..consumed);
                if !output.is_empty() {
                    let _ = timeout_at(Instant::now() + idle, stream.write_all(&output)).await;
                }
                let _ = stream.shutdown().await;
                return;
            }
            Ok(_) => {}
            Err(_) => return,
        }
    }
}

/// Answers every complete frame at the start of `input`, appending the framed
/// answers to `output`; returns the number of bytes consumed.
fn answer_frames(
    context: &Context,
    responder: &mut Responder,
    peer: SocketAddr,
    input: &[u8],
    answer: &mut Vec<u8>,
    output: &mut Vec<u8>,
) -> usize {
    let mut start = 0;
    let mut snapshot = None;
    while let Some(message) = next_frame(&input[start..]) {
        start += 2 + message.len();
        let snapshot = snapshot.get_or_insert_with(|| context.shared.load());
        answer_one(context, responder, snapshot, peer, message, answer, output);
    }
    start
}

/// The message of the first complete frame in `input`.
fn next_frame(input: &[u8]) -> Option<&[u8]> {
    let prefix = input.get(..2)?;
    let len = usize::from(u16::from_be_bytes([prefix[0], prefix[1]]));
    input.get(2..2 + len)
}

/// Answers one message, appending framed answers to `output`.
fn answer_one(
    context: &Context,
    responder: &mut Responder,
    snapshot: &Snapshot,
    peer: SocketAddr,
    message: &[u8],
    answer: &mut Vec<u8>,
    output: &mut Vec<u8>,
) {
    if let Some(tap) = &context.dnstap {
        tap.query(DnstapProtocol::Tcp, peer, context.local, message);
    }
    if let Some(transfers) = &context.transfers {
        if transfers.wants(message) {
            let messages = catch_unwind(AssertUnwindSafe(|| {
                transfers.answer_transfer(snapshot, message, peer)
            }));
            match messages {
                Ok(Some(messages)) => {
                    for message in &messages {
                        frame(message, output);
                    }
                    return;
                }
                Ok(None) => {}
                Err(_) => {
                    context.counters.internal_error();
                    tracing::error!(%peer, "internal error in a zone transfer; SERVFAIL sent");
                    if let Outcome::Answered(answered) = write_servfail(message, answer) {
                        context.counters.response_in(answered.rcode, answered.zone);
                        frame(answer, output);
                    }
                    return;
                }
            }
        }
    }
    let (outcome, panicked) =
        responder.respond_or_servfail(snapshot, message, peer.ip(), Transport::Tcp, answer);
    if panicked {
        context.counters.internal_error();
        tracing::error!(%peer, "internal error while answering over TCP; SERVFAIL sent");
    }
    match outcome {
        Outcome::Answered(answered) => {
            context.counters.response_in(answered.rcode, answered.zone);
            if let Some(slot) = answered.trickle {
                context.counters.trickle(slot);
            }
            if let Some(tap) = &context.dnstap {
                tap.response(DnstapProtocol::Tcp, peer, context.local, answer);
            }
            frame(answer, output);
        }
        Outcome::Dropped => context.counters.dropped(),
    }
}

/// Appends `message` with its 2-byte length prefix (messages too long for one
/// frame cannot be sent and are skipped).
fn frame(message: &[u8], output: &mut Vec<u8>) {
    let Ok(len) = u16::try_from(message.len()) else {
        tracing::error!(
            len = message.len(),
            "TCP message too long to frame; skipped"
        );
        return;
    };
    output.extend_from_slice(&len.to_be_bytes());
    output.extend_from_slice(message);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_taken_only_when_complete() {
        assert_eq!(next_frame(&[]), None);
        assert_eq!(next_frame(&[0]), None);
        assert_eq!(next_frame(&[0, 3, 1, 2]), None);
        assert_eq!(next_frame(&[0, 3, 1, 2, 3, 9]), Some(&[1u8, 2, 3][..]));
        assert_eq!(next_frame(&[0, 0, 7]), Some(&[][..]));
    }

    #[test]
    fn framing_prefixes_the_length_and_skips_oversized_messages() {
        let mut out = Vec::new();
        frame(&[1, 2, 3], &mut out);
        frame(&vec![0; 70_000], &mut out);
        assert_eq!(out, [0, 3, 1, 2, 3]);
    }
}
