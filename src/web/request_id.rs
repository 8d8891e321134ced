//! Request ids: every response carries an `x-request-id` header, and the log lines a request causes carry
//! the same id in their `request_id` field, so a customer report or a TikTok retry can be matched to them.
//!
//! An id is a random prefix drawn once per process and a counter: unique within a process and, by the
//! prefix, across replicas and restarts. Making one costs an atomic increment, where a per-request span
//! with a random UUID cost a system call and a dozen formatted fields on the webhook's hot path.

use std::fmt;
use std::future::{Ready, ready};
use std::io::Write as _;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};

use actix_web::dev::Payload;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{FromRequest, HttpMessage, HttpRequest};

/// The response header that carries the id.
pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

static PROCESS: LazyLock<u32> = LazyLock::new(|| uuid::Uuid::new_v4().as_u128() as u32);
static COUNTER: AtomicU64 = AtomicU64::new(1);

/// One request's id, written `<process prefix>-<sequence>` (e.g. `9f3c2a1b-1042`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestId {
    process: u32,
    sequence: u64,
}

impl RequestId {
    /// The next id of this process.
    pub fn next() -> Self {
        Self { process: *PROCESS, sequence: COUNTER.fetch_add(1, Ordering::Relaxed) }
    }

    /// The id as a header value.
    pub fn header_value(&self) -> HeaderValue {
        // 8 hex digits, a dash and at most 20 decimal digits: always fits, and is always visible ASCII.
        let mut buffer = [0u8; 32];
        let mut cursor = std::io::Cursor::new(&mut buffer[..]);
        let _ = write!(cursor, "{self}");
        let len = cursor.position() as usize;
        HeaderValue::from_bytes(&buffer[..len]).unwrap_or(HeaderValue::from_static("-"))
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}-{}", self.process, self.sequence)
    }
}

/// The id the request-id middleware (see `web::build_server`) gave this request; a request that did not
/// go through it (a handler called directly) gets a fresh one.
impl FromRequest for RequestId {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ok(req.extensions().get::<RequestId>().copied().unwrap_or_else(RequestId::next)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_distinct_and_readable_as_a_header() {
        let (a, b) = (RequestId::next(), RequestId::next());
        assert_ne!(a, b);
        assert_eq!(a.process, b.process, "one prefix per process");
        assert_eq!(a.header_value().to_str().unwrap(), a.to_string());
        let largest = RequestId { process: u32::MAX, sequence: u64::MAX };
        assert_eq!(largest.header_value().to_str().unwrap(), "ffffffff-18446744073709551615");
    }
}
