//! Frames and messages once the handshake is done. Plaintext: `0x00`, varint length,
//! varint type, the message. Noise: `0x01`, a big-endian u16 length, then the
//! encrypted `type: u16, length: u16, message`.

use esphome_native_api::parser::{message_to_num, parse_proto_message, proto_to_vec};
use esphome_native_api::FrameError;
use noise_protocol::CipherState;
use noise_rust_crypto::ChaCha20Poly1305;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use super::{ApiError, Message};

pub(super) type Cipher = CipherState<ChaCha20Poly1305>;

/// The largest frame either side sends: a Noise frame's length is a u16, and no
/// plaintext message of the protocol comes near it.
pub(super) const MAX_FRAME: usize = 65_535;
/// What encryption adds to a Noise frame: the inner header and the AEAD tag.
const NOISE_OVERHEAD: usize = 4 + 16;

/// Reads messages from the peer.
pub struct MessageReader {
    read: BufReader<OwnedReadHalf>,
    cipher: Option<Cipher>,
}

impl MessageReader {
    pub(super) fn new(read: BufReader<OwnedReadHalf>, cipher: Option<Cipher>) -> Self {
        MessageReader { read, cipher }
    }

    /// The next message; `None` when the peer closed between messages. Types this
    /// build does not know (newer ESPHome releases add some) are skipped.
    pub async fn read(&mut self) -> Result<Option<Message>, ApiError> {
        loop {
            let Some((kind, body)) = self.read_raw().await? else {
                return Ok(None);
            };
            match parse_proto_message(usize::from(kind), &body) {
                Ok(m) => return Ok(Some(m)),
                Err(FrameError::UnknownMessageType(t)) => {
                    tracing::debug!(
                        message_type = t,
                        "skipping a message type this build does not know"
                    );
                }
                Err(e) => return Err(ApiError::Protocol(e.to_string())),
            }
        }
    }

    async fn read_raw(&mut self) -> Result<Option<(u16, Vec<u8>)>, ApiError> {
        let preamble = match self.read.read_u8().await {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        match &mut self.cipher {
            None => {
                if preamble != 0x00 {
                    return Err(ApiError::Protocol(format!(
                        "plaintext frame marker {preamble:#04x}"
                    )));
                }
                let len = read_varint(&mut self.read).await? as usize;
                let kind = read_varint(&mut self.read).await?;
                if len > MAX_FRAME || kind > u32::from(u16::MAX) {
                    return Err(ApiError::Protocol(format!("frame of {len} bytes, type {kind}")));
                }
                let mut body = vec![0; len];
                self.read.read_exact(&mut body).await?;
                Ok(Some((kind as u16, body)))
            }
            Some(cipher) => {
                if preamble != 0x01 {
                    return Err(ApiError::Protocol(format!("Noise frame marker {preamble:#04x}")));
                }
                let sealed = read_noise_body(&mut self.read).await?;
                let plain = cipher
                    .decrypt_vec(&sealed)
                    .map_err(|()| ApiError::Protocol("a frame failed to decrypt".into()))?;
                if plain.len() < 4 {
                    return Err(ApiError::Protocol(
                        "encrypted frame shorter than its header".into(),
                    ));
                }
                let kind = u16::from_be_bytes([plain[0], plain[1]]);
                let len = usize::from(u16::from_be_bytes([plain[2], plain[3]]));
                if plain.len() != 4 + len {
                    return Err(ApiError::Protocol("encrypted frame length mismatch".into()));
                }
                Ok(Some((kind, plain[4..].to_vec())))
            }
        }
    }
}

/// Writes messages to the peer. `queue` encodes into a buffer and `flush` sends it,
/// so a burst (a batch of advertisements, a service list) leaves in one write.
pub struct MessageWriter {
    write: OwnedWriteHalf,
    cipher: Option<Cipher>,
    buf: Vec<u8>,
}

impl MessageWriter {
    pub(super) fn new(write: OwnedWriteHalf, cipher: Option<Cipher>) -> Self {
        MessageWriter {
            write,
            cipher,
            buf: Vec::new(),
        }
    }

    pub fn queue(&mut self, message: &Message) -> Result<(), ApiError> {
        let kind = message_to_num(message).map_err(|e| ApiError::Protocol(e.into()))?;
        let body = proto_to_vec(message).map_err(|e| ApiError::Protocol(e.into()))?;
        match &mut self.cipher {
            None => {
                self.buf.push(0x00);
                push_varint(&mut self.buf, body.len() as u32);
                push_varint(&mut self.buf, u32::from(kind));
                self.buf.extend_from_slice(&body);
            }
            Some(cipher) => {
                if body.len() + NOISE_OVERHEAD > MAX_FRAME {
                    return Err(ApiError::Protocol(format!(
                        "a message of {} bytes does not fit a frame",
                        body.len()
                    )));
                }
                let mut plain = Vec::with_capacity(4 + body.len());
                plain.extend_from_slice(&u16::from(kind).to_be_bytes());
                plain.extend_from_slice(&(body.len() as u16).to_be_bytes());
                plain.extend_from_slice(&body);
                let sealed = cipher.encrypt_vec(&plain);
                push_noise_frame(&mut self.buf, &sealed);
            }
        }
        Ok(())
    }

    pub async fn flush(&mut self) -> Result<(), ApiError> {
        if !self.buf.is_empty() {
            self.write.write_all(&self.buf).await?;
            self.buf.clear();
        }
        Ok(())
    }

    pub async fn send(&mut self, message: &Message) -> Result<(), ApiError> {
        self.queue(message)?;
        self.flush().await
    }

    /// Sends what arrives on `rx` until it closes or the peer goes: everything
    /// already queued leaves in one write. After a `DisconnectResponse` (the last
    /// word of a session) the sending side is closed.
    pub async fn pump(mut self, mut rx: tokio::sync::mpsc::Receiver<Message>) {
        while let Some(first) = rx.recv().await {
            let mut closing = false;
            let mut next = Some(first);
            while let Some(m) = next.take().or_else(|| rx.try_recv().ok()) {
                closing |= matches!(m, Message::DisconnectResponse(_));
                if let Err(e) = self.queue(&m) {
                    tracing::warn!(error = %e, "an ESPHome message could not be encoded");
                }
            }
            if self.flush().await.is_err() || closing {
                break;
            }
        }
        self.close().await;
    }

    /// Closes the sending side (after flushing what is queued).
    pub async fn close(mut self) {
        let _ = self.flush().await;
        let _ = self.write.shutdown().await;
    }
}

/// A Noise-framed body: a u16 length (the marker byte already read), then as many bytes.
pub(super) async fn read_noise_body<R: AsyncReadExt + Unpin>(r: &mut R) -> Result<Vec<u8>, ApiError> {
    let len = usize::from(r.read_u16().await?);
    let mut body = vec![0; len];
    r.read_exact(&mut body).await?;
    Ok(body)
}

pub(super) fn push_noise_frame(out: &mut Vec<u8>, body: &[u8]) {
    out.push(0x01);
    // Callers keep bodies under MAX_FRAME (a u16).
    out.extend_from_slice(&(body.len().min(MAX_FRAME) as u16).to_be_bytes());
    out.extend_from_slice(body);
}

async fn read_varint<R: AsyncReadExt + Unpin>(r: &mut R) -> Result<u32, ApiError> {
    let mut value: u32 = 0;
    for i in 0..5 {
        let b = r.read_u8().await?;
        value |= u32::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(ApiError::Protocol("varint longer than 32 bits".into()))
}

fn push_varint(out: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn varints_round_trip() {
        for v in [0u32, 1, 127, 128, 300, 16_384, u32::MAX] {
            let mut buf = Vec::new();
            push_varint(&mut buf, v);
            assert_eq!(read_varint(&mut buf.as_slice()).await.unwrap(), v);
        }
        let too_long = [0xffu8; 6];
        assert!(read_varint(&mut too_long.as_slice()).await.is_err());
    }
}
