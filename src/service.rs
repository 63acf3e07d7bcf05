//! Routing and the webhook pipeline: verify → parse → validate → transform → store.
//!
//! Works on a request whose head and body already sit in the connection buffer; the socket
//! stays in `server`. The order of the checks is the contract's: path and method, size,
//! content-type (these three in `precheck`, before the body is read), then signature, JSON and
//! field rules.

use std::ops::Range;
use std::time::Duration;

use crate::answer::{Answer, LengthMissing, Rejection};
use crate::http::{self, BodyFraming, Head, Method};
use crate::limits::COMMIT_WAIT_TIMEOUT;
use crate::oneshot;
use crate::signature::{self, Secrets};
use crate::store::{self, Pending, Pong, Reply, Store, Stored};
use crate::{payload, transform};

/// What the request handlers share.
pub struct Context {
    pub secrets: Secrets,
    pub body_size_max: usize,
    pub tolerance_secs: i64,
    /// Time a request head and body get to arrive once its first byte has.
    pub request_timeout: Duration,
    /// Time an idle keep-alive connection stays open.
    pub idle_timeout: Duration,
    pub store: Store,
}

/// The endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    Webhook,
    Healthz,
    Readyz,
    Metrics,
}

/// The buffer after the pipeline: back from the writer, or lost with a writer that did not
/// answer in time (the connection must then close).
pub type Returned = Option<Vec<u8>>;

/// One request whose head and body sit in `buffer`, past `precheck`.
pub struct Request<'h> {
    pub route: Route,
    pub head: &'h Head,
    pub buffer: Vec<u8>,
    /// Where the (decoded) body sits in `buffer`.
    pub body: Range<usize>,
    pub now_secs: i64,
}

/// A connection's side of the pipeline: the shared context. Each job to a writer gets a
/// reply slot of its own, so an idle connection holds none.
pub struct Session<'c> {
    context: &'c Context,
}

/// Checks that need only the head: path and method, size, content-type.
pub fn precheck(head: &Head, buffer: &[u8], body_size_max: usize) -> Result<Route, Rejection> {
    let path = buffer.get(head.path.clone()).unwrap_or_default();
    let (route, allow) = match path {
        b"/webhook" => (Route::Webhook, "POST"),
        b"/healthz" => (Route::Healthz, "GET, HEAD"),
        b"/readyz" => (Route::Readyz, "GET, HEAD"),
        b"/metrics" => (Route::Metrics, "GET, HEAD"),
        _ => return Err(Rejection::NotFound),
    };
    let method_allowed = match route {
        Route::Webhook => head.method == Method::Post,
        _ => matches!(head.method, Method::Get | Method::Head),
    };
    if !method_allowed {
        return Err(Rejection::MethodNotAllowed { allow });
    }
    match head.body {
        BodyFraming::Length(length) if length > body_size_max as u64 => {
            return Err(Rejection::PayloadTooLarge);
        }
        BodyFraming::Chunked if route != Route::Webhook => {
            return Err(Rejection::LengthRequired(LengthMissing::ChunkedOffWebhook));
        }
        BodyFraming::None if route == Route::Webhook => {
            return Err(Rejection::LengthRequired(LengthMissing::ContentLength));
        }
        _ => {}
    }
    if route == Route::Webhook {
        let content_type = head.content_type.clone().and_then(|span| buffer.get(span));
        if !content_type.is_some_and(http::is_json_media_type) {
            return Err(Rejection::UnsupportedMediaType);
        }
    }
    Ok(route)
}

impl<'c> Session<'c> {
    /// A session for one connection.
    pub fn new(context: &'c Context) -> Session<'c> {
        Session { context }
    }

    /// The limits and settings the connection works under.
    pub fn context(&self) -> &'c Context {
        self.context
    }

    /// Runs the request's route.
    pub fn handle(&mut self, request: Request<'_>) -> (Result<Answer, Rejection>, Returned) {
        match request.route {
            Route::Webhook => self.webhook(request),
            Route::Healthz => (Ok(Answer::Healthy), Some(request.buffer)),
            Route::Readyz => (self.ready(), Some(request.buffer)),
            Route::Metrics => {
                let text = crate::metrics::render(self.context.store.queued());
                (Ok(Answer::Metrics(text)), Some(request.buffer))
            }
        }
    }

    // Out of line: inlined, its locals made every connection's frame deeper, so an idle
    // connection that only ever answered health checks touched a third stack page.
    #[inline(never)]
    fn webhook(&mut self, request: Request<'_>) -> (Result<Answer, Rejection>, Returned) {
        let prepared = prepare(self.context, &request);
        let Request { head, buffer, .. } = request;
        let pending = match prepared {
            Ok(pending) => pending,
            Err(rejection) => return (Err(rejection), Some(buffer)),
        };
        let id = head.webhook_id.clone().unwrap_or_default();
        let (reply, replied) = oneshot::slot();
        if let Err((error, buffer)) = self.context.store.submit(buffer, pending, reply) {
            return (Err(unavailable(error)), Some(buffer));
        }
        match replied.wait(COMMIT_WAIT_TIMEOUT) {
            Some(Reply::Insert { outcome, buffer }) => {
                let answer = outcome.map(|stored| match stored {
                    Stored::Accepted => Answer::Accepted(id),
                    Stored::Duplicate => Answer::Duplicate(id),
                });
                (answer.map_err(unavailable), Some(buffer))
            }
            // A ping's reply cannot come here: the slot was made for this job.
            Some(Reply::Ping(_)) | None => (Err(unavailable(store::Error::Timeout)), None),
        }
    }

    fn ready(&mut self) -> Result<Answer, Rejection> {
        let (reply, replied) = oneshot::slot();
        self.context.store.ping(reply).map_err(unavailable)?;
        // A reply after the timeout lands in this slot, which no later request reads.
        match replied.wait(COMMIT_WAIT_TIMEOUT) {
            Some(Reply::Ping(Ok(Pong))) => Ok(Answer::Healthy),
            Some(Reply::Ping(Err(error))) => Err(unavailable(error)),
            Some(Reply::Insert { .. }) | None => Err(unavailable(store::Error::Timeout)),
        }
    }
}

/// Everything up to the database, on the borrowed request bytes.
fn prepare(context: &Context, request: &Request<'_>) -> Result<Pending, Rejection> {
    let Request { head, buffer, .. } = request;
    let header = |span: &Option<Range<usize>>| span.clone().and_then(|span| buffer.get(span));
    let headers = signature::Headers {
        id: header(&head.webhook_id),
        timestamp: header(&head.webhook_timestamp),
        signature: header(&head.webhook_signature),
    };
    let body = buffer.get(request.body.clone()).unwrap_or_default();
    let verified = signature::verify(
        &context.secrets,
        &headers,
        body,
        request.now_secs,
        context.tolerance_secs,
    )?;
    let webhook = payload::parse(body)?;
    let event = payload::validate(&webhook)?;
    let row = transform::transform(verified.id, verified.timestamp, &event);
    Ok(Pending::new(&row, buffer))
}

#[cold]
fn unavailable(error: store::Error) -> Rejection {
    log::debug!("answering 503: {error:?}");
    Rejection::Unavailable
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_late_reply_never_answers_a_later_request() {
        let (store, writers) = Store::stalled();
        let context = Context {
            secrets: Secrets::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap(),
            body_size_max: 100,
            tolerance_secs: 300,
            request_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(1),
            store,
        };
        let mut session = Session::new(&context);
        // Nothing answers the first ping, so its wait times out.
        assert_eq!(session.ready().unwrap_err().code(), "unavailable");
        // The writer answers it after the requester gave up: a failure, which must go nowhere.
        writers.answer_ping(Err(store::Error::Unavailable));
        // The next request's own ping succeeds; the late failure must not be its answer.
        let writer = std::thread::spawn(move || writers.answer_ping(Ok(Pong)));
        assert!(matches!(session.ready(), Ok(Answer::Healthy)));
        writer.join().unwrap();
    }

    #[track_caller]
    fn check(raw: &str, expected: Result<Route, &str>) {
        let head = http::parse_head(raw.as_bytes()).unwrap().unwrap();
        let actual = precheck(&head, raw.as_bytes(), 100).map_err(|r| r.code());
        assert_eq!(actual, expected, "{raw:?}");
    }

    #[test]
    fn prechecks_in_contract_order() {
        let json = "content-type: application/json\r\n";
        check("GET /healthz HTTP/1.1\r\n\r\n", Ok(Route::Healthz));
        check("HEAD /readyz HTTP/1.1\r\n\r\n", Ok(Route::Readyz));
        check("GET /metrics?x HTTP/1.1\r\n\r\n", Ok(Route::Metrics));
        check("GET /nope HTTP/1.1\r\n\r\n", Err("not_found"));
        check(
            "POST /nope HTTP/1.1\r\ncontent-length: 999\r\n\r\n",
            Err("not_found"),
        );
        check("GET /webhook HTTP/1.1\r\n\r\n", Err("method_not_allowed"));
        check("POST /healthz HTTP/1.1\r\n\r\n", Err("method_not_allowed"));
        check(
            &format!("POST /webhook HTTP/1.1\r\n{json}content-length: 100\r\n\r\n"),
            Ok(Route::Webhook),
        );
        check(
            &format!("POST /webhook HTTP/1.1\r\n{json}content-length: 101\r\n\r\n"),
            Err("payload_too_large"),
        );
        check(
            "POST /webhook HTTP/1.1\r\ncontent-length: 101\r\n\r\n",
            Err("payload_too_large"),
        );
        check(
            "POST /webhook HTTP/1.1\r\ncontent-length: 10\r\n\r\n",
            Err("unsupported_media_type"),
        );
        check(
            "POST /webhook HTTP/1.1\r\ncontent-type: text/plain\r\ncontent-length: 10\r\n\r\n",
            Err("unsupported_media_type"),
        );
        check(
            &format!("POST /webhook HTTP/1.1\r\n{json}\r\n"),
            Err("length_required"),
        );
        check(
            &format!("POST /webhook HTTP/1.1\r\n{json}transfer-encoding: chunked\r\n\r\n"),
            Ok(Route::Webhook),
        );
        check(
            "GET /healthz HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n",
            Err("length_required"),
        );
    }
}
