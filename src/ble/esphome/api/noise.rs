//! Opening a session: plaintext, or the Noise handshake ESPHome uses
//! (`Noise_NNpsk0_25519_ChaChaPoly_SHA256`, prologue `NoiseAPIInit\0\0`, a 32-byte
//! pre-shared key given as base64). The client sends an empty hello frame and its
//! handshake message at once; the server answers with a hello naming the protocol
//! (1), its name and MAC, then its handshake message, or `0x01` and a reason.

use base64::Engine;
use noise_protocol::patterns::noise_nn_psk0;
use noise_protocol::HandshakeState;
use noise_rust_crypto::{ChaCha20Poly1305, Sha256, X25519};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::frame::{push_noise_frame, read_noise_body, MessageReader, MessageWriter};
use super::ApiError;

const PROLOGUE: &[u8] = b"NoiseAPIInit\0\0";
/// What ESPHome answers a wrong key with; aioesphomeapi maps it to "invalid key".
const MAC_FAILURE: &str = "Handshake MAC failure";

type Handshake = HandshakeState<X25519, ChaCha20Poly1305, Sha256>;

/// A Noise pre-shared key (`noise_psk`): 32 bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Psk([u8; 32]);

impl std::fmt::Debug for Psk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Psk(..)")
    }
}

/// Decodes a `noise_psk` as ESPHome writes it: base64 of 32 bytes.
pub fn decode_psk(text: &str) -> Result<Psk, ApiError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|e| ApiError::BadKey(format!("not base64: {e}")))?;
    let key: [u8; 32] = bytes
        .try_into()
        .map_err(|b: Vec<u8>| ApiError::BadKey(format!("{} bytes, expected 32", b.len())))?;
    Ok(Psk(key))
}

fn handshake(initiator: bool, psk: &Psk) -> Handshake {
    let mut hs = Handshake::new(noise_nn_psk0(), initiator, PROLOGUE, None, None, None, None);
    hs.push_psk(&psk.0);
    hs
}

pub(super) async fn accept(
    stream: TcpStream,
    psk: Option<&Psk>,
    name: &str,
    mac: &str,
) -> Result<(MessageReader, MessageWriter), ApiError> {
    stream.set_nodelay(true)?;
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let first = match read.fill_buf().await?.first() {
        Some(b) => *b,
        None => return Err(ApiError::Closed),
    };
    match (first, psk) {
        (0x00, None) => Ok((MessageReader::new(read, None), MessageWriter::new(write, None))),
        (0x00, Some(_)) => {
            // A Noise frame the plaintext client cannot read: it reports that the
            // device requires encryption.
            let mut out = Vec::new();
            push_noise_frame(&mut out, b"\x01Only key encryption is enabled");
            let _ = write.write_all(&out).await;
            Err(ApiError::PlaintextRefused)
        }
        (0x01, None) => {
            // A plaintext marker tells the Noise client this device does not encrypt.
            let _ = write.write_all(&[0x00, 0x00, 0x00]).await;
            Err(ApiError::EncryptionRefused)
        }
        (0x01, Some(psk)) => {
            // The client hello (empty), then its handshake message.
            let _hello = read_frame(&mut read).await?;
            let request = read_frame(&mut read).await?;
            let mut out = Vec::new();
            let mut server_hello = vec![0x01];
            server_hello.extend_from_slice(name.as_bytes());
            server_hello.push(0);
            server_hello.extend_from_slice(mac.as_bytes());
            server_hello.push(0);
            push_noise_frame(&mut out, &server_hello);
            let mut hs = handshake(false, psk);
            let Some((&0x00, message)) = request.split_first() else {
                return Err(ApiError::Handshake(
                    "the client's handshake frame is malformed".into(),
                ));
            };
            if hs.read_message_vec(message).is_err() {
                let mut reason = vec![0x01];
                reason.extend_from_slice(MAC_FAILURE.as_bytes());
                push_noise_frame(&mut out, &reason);
                let _ = write.write_all(&out).await;
                return Err(ApiError::WrongKey);
            }
            let reply = hs
                .write_message_vec(&[])
                .map_err(|e| ApiError::Handshake(format!("{e:?}")))?;
            let mut framed = vec![0x00];
            framed.extend_from_slice(&reply);
            push_noise_frame(&mut out, &framed);
            write.write_all(&out).await?;
            let (decrypt, encrypt) = hs.get_ciphers();
            Ok((
                MessageReader::new(read, Some(decrypt)),
                MessageWriter::new(write, Some(encrypt)),
            ))
        }
        (other, _) => Err(ApiError::Protocol(format!("frame marker {other:#04x}"))),
    }
}

pub(super) async fn connect(
    stream: TcpStream,
    psk: Option<&Psk>,
) -> Result<(MessageReader, MessageWriter), ApiError> {
    stream.set_nodelay(true)?;
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let Some(psk) = psk else {
        return Ok((MessageReader::new(read, None), MessageWriter::new(write, None)));
    };
    let mut hs = handshake(true, psk);
    let message = hs
        .write_message_vec(&[])
        .map_err(|e| ApiError::Handshake(format!("{e:?}")))?;
    let mut out = Vec::new();
    push_noise_frame(&mut out, &[]);
    let mut framed = vec![0x00];
    framed.extend_from_slice(&message);
    push_noise_frame(&mut out, &framed);
    write.write_all(&out).await?;
    let hello = read_frame(&mut read).await?;
    if hello.first() != Some(&0x01) {
        return Err(ApiError::Handshake("the server chose an unknown protocol".into()));
    }
    let answer = read_frame(&mut read).await?;
    match answer.split_first() {
        Some((&0x00, message)) => {
            hs.read_message_vec(message).map_err(|_| ApiError::WrongKey)?;
        }
        Some((_, reason)) if reason == MAC_FAILURE.as_bytes() => return Err(ApiError::WrongKey),
        Some((_, reason)) => {
            return Err(ApiError::Handshake(String::from_utf8_lossy(reason).into_owned()));
        }
        None => return Err(ApiError::Handshake("empty handshake answer".into())),
    }
    let (encrypt, decrypt) = hs.get_ciphers();
    Ok((
        MessageReader::new(read, Some(decrypt)),
        MessageWriter::new(write, Some(encrypt)),
    ))
}

/// One handshake frame's body. A plaintext marker means the peer does not encrypt.
async fn read_frame(read: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> Result<Vec<u8>, ApiError> {
    match read.read_u8().await {
        Ok(0x01) => read_noise_body(read).await,
        Ok(0x00) => Err(ApiError::EncryptionUnsupported),
        Ok(other) => Err(ApiError::Protocol(format!("frame marker {other:#04x}"))),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(ApiError::Closed),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_32_bytes_of_base64() {
        assert!(decode_psk("px7tsbK3C7bpXHr2OevEV2ZMg/FrNBw2+O2pNPbedtA=").is_ok());
        assert!(matches!(decode_psk("not base64!"), Err(ApiError::BadKey(_))));
        assert!(matches!(decode_psk("AAAA"), Err(ApiError::BadKey(_))));
    }
}
