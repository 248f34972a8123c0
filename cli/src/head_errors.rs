//! hyper answers a request head it cannot parse (a NUL or other control byte
//! in a header, a malformed request line, headers or a URI too long) itself,
//! with a bare `400` (or `431`, `414`) and no body, before any service sees
//! the request. DynamoDB's clients expect every error as JSON with
//! `__type` and `message`, so this connection wrapper recognizes that
//! automatic answer as it is written (a response head of one of those
//! statuses with `content-length: 0` and none of the headers every answer
//! of Strata's carries) and writes DynamoDB's shape in its place. hyper
//! closes the connection after it, so nothing follows on the wire.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

pub struct JsonHeadErrors<T> {
    io: T,
    /// The JSON answer being written in place of hyper's, and how much of
    /// it is written.
    replacing: Option<(Vec<u8>, usize)>,
}

impl<T> JsonHeadErrors<T> {
    pub fn new(io: T) -> Self {
        Self {
            io,
            replacing: None,
        }
    }
}

/// The status of hyper's automatic answer, if `buf` is one.
fn automatic_answer(buf: &[u8]) -> Option<u16> {
    let status = [
        (b"HTTP/1.1 400 ", 400),
        (b"HTTP/1.1 431 ", 431),
        (b"HTTP/1.1 414 ", 414),
    ]
    .into_iter()
    .find(|(line, _)| buf.starts_with(*line))?
    .1;
    // The whole answer is its head: no body, nothing of Strata's.
    if !buf.ends_with(b"\r\n\r\n") || buf.len() > 512 {
        return None;
    }
    let head = String::from_utf8_lossy(buf).to_ascii_lowercase();
    (head.contains("\r\ncontent-length: 0\r\n") && !head.contains("x-amzn-requestid"))
        .then_some(status)
}

/// DynamoDB's shape of the answer hyper chose.
fn json_answer(status: u16) -> Vec<u8> {
    let (reason, message) = match status {
        431 => (
            "Request Header Fields Too Large",
            "The request's headers are too large.",
        ),
        414 => ("URI Too Long", "The request's URI is too long."),
        _ => (
            "Bad Request",
            "The request could not be parsed: a malformed request line or header (control characters are not allowed in headers).",
        ),
    };
    let e = strata_api::ApiError::serialization(message);
    let body = strata_api::Response::error(&e).body;
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/x-amz-json-1.0\r\nx-amzn-RequestId: {}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        strata_api::request_id(),
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(&body);
    out
}

impl<T: AsyncRead + Unpin> AsyncRead for JsonHeadErrors<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for JsonHeadErrors<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.replacing.is_none() {
            match automatic_answer(buf) {
                Some(status) => this.replacing = Some((json_answer(status), 0)),
                None => return Pin::new(&mut this.io).poll_write(cx, buf),
            }
        }
        let Some((answer, written)) = this.replacing.as_mut() else {
            return Pin::new(&mut this.io).poll_write(cx, buf);
        };
        while *written < answer.len() {
            match Pin::new(&mut this.io).poll_write(cx, &answer[*written..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => *written += n,
                other => return other,
            }
        }
        // hyper's answer counts as written; it closes the connection next.
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hypers_bare_answers_are_replaced() {
        let hyper = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\ndate: Sat, 05 Dec 2026 01:00:00 GMT\r\n\r\n";
        assert_eq!(automatic_answer(hyper), Some(400));
        let big = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(automatic_answer(big), Some(431));
        // Strata's own answers carry a request id (and usually a body).
        let ours =
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nx-amzn-requestid: abc\r\n\r\n";
        assert_eq!(automatic_answer(ours), None);
        let with_body = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 2\r\n\r\n{}";
        assert_eq!(automatic_answer(with_body), None);
        assert_eq!(
            automatic_answer(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"),
            None
        );
        let answer = String::from_utf8(json_answer(400)).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{head}");
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert!(body["__type"]
            .as_str()
            .unwrap()
            .ends_with("#SerializationException"));
    }
}
