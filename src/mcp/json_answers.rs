//! Plain answers as `application/json` on Streamable HTTP. In session mode rmcp
//! answers every POST as its own SSE stream: a priming event, the response, the end.
//! Clients read the response and drop the stream before its end arrives, so the
//! connection cannot be reused and every call opened a new TCP connection (measured:
//! some 5,000 sockets in TIME-WAIT after three seconds of calls). The spec lets a
//! server answer a request with `application/json` when it has nothing else to
//! send first; this middleware does exactly that: it reads the stream's first real
//! event, and when it is the response, answers with it as JSON. When something else
//! comes first (a progress notification, a request to the client), the answer stays
//! SSE, replaying what was read, so nothing is lost or delayed further.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use http_body_util::BodyExt;

/// The most read while looking for the first event; past it, the answer stays SSE.
const MAX_LOOKAHEAD: usize = 1 << 20;

pub async fn prefer_json(req: Request, next: Next) -> Response {
    let wants_json = req.method() == Method::POST
        && req
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("application/json"));
    let response = next.run(req).await;
    let is_sse = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("text/event-stream"));
    if !wants_json || !is_sse {
        return response;
    }
    let (mut parts, mut body) = response.into_parts();
    let mut read = BytesMut::new();
    loop {
        match first_event(&read) {
            Some(First::Response(json)) => {
                parts
                    .headers
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
                parts.headers.remove(header::CACHE_CONTROL);
                parts.headers.remove(header::CONTENT_LENGTH);
                return Response::from_parts(parts, Body::from(json));
            }
            Some(First::Other) => break,
            None if read.len() > MAX_LOOKAHEAD => break,
            None => {}
        }
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    read.extend_from_slice(&data);
                }
            }
            // The stream ended (or failed) before a whole event: hand on what came.
            Some(Err(_)) | None => break,
        }
    }
    let replay = futures::stream::once(async move { Ok::<Bytes, axum::Error>(read.freeze()) });
    let rest = body.into_data_stream();
    Response::from_parts(parts, Body::from_stream(replay.chain(rest)))
}

enum First {
    /// The first event with data is a JSON-RPC response: its JSON.
    Response(Bytes),
    /// It is something else (a notification, a request).
    Other,
}

/// The first complete event that carries data, skipping priming events (empty
/// data) and keep-alive comments; `None` while no such event is complete.
fn first_event(buf: &[u8]) -> Option<First> {
    let text = std::str::from_utf8(buf).ok()?;
    let mut rest = text;
    while let Some(end) = find_event_end(rest) {
        let (event, after) = rest.split_at(end.0);
        rest = &after[end.1..];
        let data: Vec<&str> = event
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .map(|d| d.strip_prefix(' ').unwrap_or(d))
            .collect();
        let data = data.join("\n");
        if data.trim().is_empty() {
            continue;
        }
        let is_response = serde_json::from_str::<serde_json::Value>(&data)
            .ok()
            .is_some_and(|v| {
                v.get("id").is_some() && (v.get("result").is_some() || v.get("error").is_some())
            });
        return Some(if is_response {
            First::Response(Bytes::from(data))
        } else {
            First::Other
        });
    }
    None
}

/// Where the first event ends: (its length, the separator's length).
fn find_event_end(s: &str) -> Option<(usize, usize)> {
    ["\r\n\r\n", "\n\n", "\r\r"]
        .iter()
        .filter_map(|sep| s.find(sep).map(|i| (i, sep.len())))
        .min_by_key(|(i, _)| *i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_response_after_a_priming_event_is_found() {
        let sse = b"data: \nid: 0/7\nretry: 3000\n\ndata: {\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{}}\n\n";
        match first_event(sse) {
            Some(First::Response(json)) => {
                assert_eq!(&json[..], b"{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{}}")
            }
            _ => panic!("no response found"),
        }
    }

    #[test]
    fn a_notification_first_keeps_the_stream_and_half_an_event_waits() {
        let progress = b"data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{}}\n\n";
        assert!(matches!(first_event(progress), Some(First::Other)));
        assert!(first_event(b"data: {\"jsonrpc\":\"2.0\",\"id\":7,").is_none());
        assert!(first_event(b": keep-alive\n\n").is_none());
    }
}
