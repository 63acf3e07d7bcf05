//! Routing and the event pipeline: verify → parse → validate → transform → store.
//!
//! Works on a request whose head and body already sit in the connection buffer; the socket
//! stays with `connection`, which lends it only for the wait on a writer's reply. The order of
//! the checks is the contract's: path and method, size, content-type (these three in
//! `precheck`, before the body is read), then signature, JSON and field rules. Each event
//! endpoint is one `signature::Scheme`: `/webhook` is Standard Webhooks with the contract's
//! body, `/stripe` is Stripe's signature and event body; an endpoint whose keys are not
//! configured answers 404.

use std::ops::Range;
use std::time::Duration;

use may::net::TcpStream;

use crate::answer::{Answer, LengthMissing, Rejection};
use crate::deadline::Watched;
use crate::health;
use crate::http::{self, BodyFraming, Head, Method};
use crate::limits::{COMMIT_WAIT_TIMEOUT, QUEUE_LEN_MAX};
use crate::oneshot;
use crate::payload::{self, Event};
use crate::signature::{Scheme, standard, stripe};
use crate::store::{self, Pending, Pong, Reply, Store, Stored};
use crate::text::{self, Text};
use crate::{stripe_event, transform};

/// What the request handlers share.
pub struct Context {
    /// `WEBHOOK_SECRET`'s keys; `None` turns `/webhook` off (404).
    pub webhook_keys: Option<standard::Keys>,
    /// `STRIPE_WEBHOOK_SECRET`'s secrets; `None` turns `/stripe` off (404).
    pub stripe_secrets: Option<stripe::Secrets>,
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
    /// An event endpoint, verified by its scheme.
    Events(Scheme),
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

impl Request<'_> {
    /// The (decoded) body's bytes.
    fn body_bytes(&self) -> &[u8] {
        self.buffer.get(self.body.clone()).unwrap_or_default()
    }

    /// A signature header's value, as `Head::header` finds it in the buffer.
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.head.header(&self.buffer, name)
    }
}

/// The socket a connection's coroutine waits on for a writer's reply (`oneshot`).
pub type Socket<'s> = Watched<'s, TcpStream>;

/// A connection's side of the pipeline: the shared context and the reply slot, made on the
/// first job (an idle connection that only answered health checks holds none).
pub struct Session<'c> {
    context: &'c Context,
    /// The reply slot, made on the first job and dropped after a wait that timed out.
    replies: Option<oneshot::Replies<Reply>>,
}

/// What `prepare` hands on: a row to store, or the id of an event answered without storing.
enum Prepared {
    Store { pending: Pending, id: Text },
    Ignore { id: Text },
}

impl Context {
    /// Whether the endpoint of `scheme` is on: its keys are configured.
    pub fn serves(&self, scheme: Scheme) -> bool {
        match scheme {
            Scheme::Standard => self.webhook_keys.is_some(),
            Scheme::Stripe => self.stripe_secrets.is_some(),
        }
    }
}

/// Checks that need only the head: path and method, size, content-type.
pub fn precheck(head: &Head, buffer: &[u8], context: &Context) -> Result<Route, Rejection> {
    let path = buffer.get(head.path.clone()).unwrap_or_default();
    let (route, allow) = match path {
        b"/webhook" => (Route::Events(Scheme::Standard), "POST"),
        b"/stripe" => (Route::Events(Scheme::Stripe), "POST"),
        b"/healthz" => (Route::Healthz, "GET, HEAD"),
        b"/readyz" => (Route::Readyz, "GET, HEAD"),
        b"/metrics" => (Route::Metrics, "GET, HEAD"),
        _ => return Err(Rejection::NotFound),
    };
    let events = matches!(route, Route::Events(_));
    if let Route::Events(scheme) = route
        && !context.serves(scheme)
    {
        return Err(Rejection::NotFound);
    }
    let method_allowed = match route {
        Route::Events(_) => head.method == Method::Post,
        _ => matches!(head.method, Method::Get | Method::Head),
    };
    if !method_allowed {
        return Err(Rejection::MethodNotAllowed { allow });
    }
    match head.body {
        BodyFraming::Length(length) if length > context.body_size_max as u64 => {
            return Err(Rejection::PayloadTooLarge);
        }
        BodyFraming::Chunked if !events => {
            return Err(Rejection::LengthRequired(LengthMissing::ChunkedOffEvents));
        }
        BodyFraming::None if events => {
            return Err(Rejection::LengthRequired(LengthMissing::ContentLength));
        }
        _ => {}
    }
    if events {
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
        Session {
            context,
            replies: None,
        }
    }

    /// The limits and settings the connection works under.
    pub fn context(&self) -> &'c Context {
        self.context
    }

    /// Runs the request's route; a writer's reply is waited for on `socket`.
    pub fn handle(
        &mut self,
        request: Request<'_>,
        socket: &mut Socket<'_>,
    ) -> (Result<Answer, Rejection>, Returned) {
        match request.route {
            Route::Events(scheme) => self.events(scheme, request, socket),
            Route::Healthz => (Ok(Answer::Healthy), Some(request.buffer)),
            Route::Readyz => (self.ready(socket), Some(request.buffer)),
            Route::Metrics => {
                let text = crate::metrics::render(self.context.store.queued());
                (Ok(Answer::Metrics(text)), Some(request.buffer))
            }
        }
    }

    // Out of line: inlined, its locals made every connection's frame deeper, so an idle
    // connection that only ever answered health checks touched a third stack page.
    #[inline(never)]
    fn events(
        &mut self,
        scheme: Scheme,
        request: Request<'_>,
        socket: &mut Socket<'_>,
    ) -> (Result<Answer, Rejection>, Returned) {
        let prepared = prepare(self.context, scheme, &request);
        let Request { buffer, .. } = request;
        let (pending, id) = match prepared {
            Ok(Prepared::Store { pending, id }) => (pending, id),
            Ok(Prepared::Ignore { id }) => return (Ok(Answer::Ignored(id)), Some(buffer)),
            Err(rejection) => return (Err(rejection), Some(buffer)),
        };
        let replies = self.replies(socket);
        let reply = replies.sender();
        if let Err((error, buffer)) = self.context.store.submit(buffer, pending, reply) {
            self.replies = Some(replies);
            return (Err(unavailable(error)), Some(buffer));
        }
        match self.wait(replies, socket) {
            Some(Reply::Insert { outcome, buffer }) => {
                let answer = outcome.map(|stored| match stored {
                    Stored::Accepted => Answer::Accepted(id),
                    Stored::Duplicate => Answer::Duplicate(id),
                });
                (answer.map_err(unavailable), Some(buffer))
            }
            // A ping's reply cannot come here: one job at a time uses the slot.
            Some(Reply::Ping(_)) | None => (Err(unavailable(store::Error::Timeout)), None),
        }
    }

    /// Ready when a write can commit now. A problem the writers published is answered at once
    /// (writers stuck in a replication wait cannot delay it) and one probe is sent to look
    /// again; otherwise a probe goes through a writer, bounded by `COMMIT_WAIT_TIMEOUT`.
    fn ready(&mut self, socket: &mut Socket<'_>) -> Result<Answer, Rejection> {
        let store = &self.context.store;
        if let Some(problem) = health::problem() {
            if health::claim_refresh() {
                // Nobody waits for this probe: the writer publishes what it finds.
                if store.ping(oneshot::unheard()).is_err() {
                    health::refreshed();
                }
            }
            return Err(Rejection::NotReady(problem));
        }
        let replies = self.replies(socket);
        if let Err(error) = store.ping(replies.sender()) {
            self.replies = Some(replies);
            return Err(not_ready(error));
        }
        match self.wait(replies, socket) {
            Some(Reply::Ping(Ok(Pong))) => Ok(Answer::Healthy),
            Some(Reply::Ping(Err(error))) => Err(not_ready(error)),
            Some(Reply::Insert { .. }) | None => Err(not_ready(store::Error::Timeout)),
        }
    }
}

impl Session<'_> {
    /// The connection's reply slot, made now if it has none.
    fn replies(&mut self, socket: &Socket<'_>) -> oneshot::Replies<Reply> {
        self.replies
            .take()
            .unwrap_or_else(|| oneshot::Replies::new(&**socket))
    }

    /// The writer's reply to the job just submitted on `replies`, or `None` after
    /// `COMMIT_WAIT_TIMEOUT`; the slot is kept for the next job only when the reply came.
    fn wait(&mut self, replies: oneshot::Replies<Reply>, socket: &mut Socket<'_>) -> Option<Reply> {
        let (reply, replies) = replies.wait(socket, COMMIT_WAIT_TIMEOUT)?;
        self.replies = Some(replies);
        Some(reply)
    }
}

/// Everything up to the database, on the borrowed request bytes: the scheme's signature, then
/// its body.
fn prepare(
    context: &Context,
    scheme: Scheme,
    request: &Request<'_>,
) -> Result<Prepared, Rejection> {
    let tolerance = context.tolerance_secs;
    match scheme {
        Scheme::Standard => {
            // `precheck` routed here only with keys; `NotFound` keeps that without a panic.
            let keys = context.webhook_keys.as_ref().ok_or(Rejection::NotFound)?;
            prepare_standard(keys, request, tolerance)
        }
        Scheme::Stripe => {
            let secrets = context.stripe_secrets.as_ref().ok_or(Rejection::NotFound)?;
            prepare_stripe(secrets, request, tolerance)
        }
    }
}

// Each scheme's checks, parsing and validation are never inlined into `prepare`: inlined, both
// schemes' locals shared `Session::events`' frame (4.8 KiB). A coroutine keeps every stack
// page it touched once, so depth is memory: a `/webhook` request went 13.7 KiB deep (four
// pages) and now goes 7.3 KiB (two; measured in `/proc/PID/mem` of a parked connection).

#[inline(never)]
fn prepare_standard(
    keys: &standard::Keys,
    request: &Request<'_>,
    tolerance: i64,
) -> Result<Prepared, Rejection> {
    let (body, now) = (request.body_bytes(), request.now_secs);
    let delivery = standard::headers(|name| request.header(name))?;
    let verified = standard::verify_delivery(keys, &delivery, body, now, tolerance)?;
    let webhook = payload::parse(body)?;
    let event = payload::validate(&webhook)?;
    let (id, provider_ts) = (verified.id, verified.timestamp);
    Ok(to_store(
        Scheme::Standard,
        id,
        provider_ts,
        &event,
        &request.buffer,
    ))
}

#[inline(never)]
fn prepare_stripe(
    secrets: &stripe::Secrets,
    request: &Request<'_>,
    tolerance: i64,
) -> Result<Prepared, Rejection> {
    let (body, now) = (request.body_bytes(), request.now_secs);
    stripe::verify(secrets, |name| request.header(name), body, now, tolerance)?;
    let event = stripe_event::parse(body)?;
    let buffer = &request.buffer;
    match stripe_event::validate(&event)? {
        stripe_event::Outcome::Store { id, created, event } => {
            Ok(to_store(Scheme::Stripe, &id, created, &event, buffer))
        }
        stripe_event::Outcome::Ignored { id } => Ok(Prepared::Ignore {
            id: text::locate(&id, buffer),
        }),
    }
}

/// The row `scheme` verified for `event`, stored under `id`, detached from its borrow of
/// `buffer`.
fn to_store(
    scheme: Scheme,
    id: &str,
    provider_ts: i64,
    event: &Event<'_>,
    buffer: &[u8],
) -> Prepared {
    let row = transform::transform(id, provider_ts, event);
    Prepared::Store {
        pending: Pending::new(&row, buffer, scheme),
        id: text::locate(id, buffer),
    }
}

/// `/readyz`'s answer when its probe failed: the problem the writer published, or `error`.
#[cold]
fn not_ready(error: store::Error) -> Rejection {
    let problem = health::problem().unwrap_or_else(|| {
        let (reason, message) = match error {
            store::Error::QueueFull => (
                health::Reason::QueueFull,
                format!("{QUEUE_LEN_MAX} events are waiting for a writer"),
            ),
            store::Error::Timeout => (
                health::Reason::WritersBusy,
                format!(
                    "no database writer answered within {} ms",
                    COMMIT_WAIT_TIMEOUT.as_millis()
                ),
            ),
            // A writer answered 503 but another one has committed since.
            store::Error::Unavailable => (
                health::Reason::WriteFailed,
                "the database did not answer the probe".to_owned(),
            ),
        };
        health::Problem { reason, message }
    });
    Rejection::NotReady(problem)
}

#[cold]
fn unavailable(error: store::Error) -> Rejection {
    log::debug!("answering 503: {error:?}");
    Rejection::Unavailable
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A context on `store`, with the endpoints whose keys are given.
    fn context_on(store: Store, webhook: Option<&str>, stripe: Option<&str>) -> Context {
        Context {
            webhook_keys: webhook.map(|keys| standard::Keys::parse(keys).unwrap()),
            stripe_secrets: stripe.map(|secrets| stripe::Secrets::parse(secrets).unwrap()),
            body_size_max: 100,
            tolerance_secs: 300,
            request_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(1),
            store,
        }
    }

    /// A context whose store never answers, with the endpoints whose keys are given.
    fn context(webhook: Option<&str>, stripe: Option<&str>) -> Context {
        context_on(Store::stalled().0, webhook, stripe)
    }

    const WEBHOOK: Option<&str> = Some("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    const STRIPE: Option<&str> = Some("whsec_stripe_test");

    #[test]
    fn a_late_reply_never_answers_a_later_request() {
        let (store, writers) = Store::stalled();
        let context: &'static Context = Box::leak(Box::new(context_on(store, WEBHOOK, None)));
        let (mut socket, _client) = crate::deadline::watched_socket();
        let (first, second) = may::go!(move || {
            let mut session = Session::new(context);
            // Nothing answers the first ping, so its wait times out.
            let first = session.ready(&mut socket).unwrap_err().code();
            // The writer answers it after the requester gave up: a failure, which must go
            // nowhere.
            writers.answer_ping(Err(store::Error::Unavailable));
            // The next request's own ping succeeds; the late failure must not be its answer.
            let writer = std::thread::spawn(move || writers.answer_ping(Ok(Pong)));
            let second = matches!(session.ready(&mut socket), Ok(Answer::Healthy));
            writer.join().unwrap();
            (first, second)
        })
        .join()
        .unwrap();
        assert_eq!(first, "unavailable");
        assert!(second, "the late failure answered the next ping");
    }

    #[track_caller]
    fn check_with(context: &Context, raw: &str, expected: Result<Route, &str>) {
        let head = http::parse_head(raw.as_bytes()).unwrap().unwrap();
        let actual = precheck(&head, raw.as_bytes(), context).map_err(|r| r.code());
        assert_eq!(actual, expected, "{raw:?}");
    }

    #[track_caller]
    fn check(raw: &str, expected: Result<Route, &str>) {
        check_with(&context(WEBHOOK, STRIPE), raw, expected);
    }

    #[test]
    fn endpoints_without_keys_are_not_found() {
        let post = |path: &str| {
            format!(
                "POST {path} HTTP/1.1\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n"
            )
        };
        let webhook = Ok(Route::Events(Scheme::Standard));
        let stripe = Ok(Route::Events(Scheme::Stripe));
        check_with(&context(WEBHOOK, None), &post("/webhook"), webhook);
        check_with(&context(WEBHOOK, None), &post("/stripe"), Err("not_found"));
        check_with(&context(None, STRIPE), &post("/webhook"), Err("not_found"));
        check_with(&context(None, STRIPE), &post("/stripe"), stripe);
        check_with(
            &context(WEBHOOK, None),
            "GET /stripe HTTP/1.1\r\n\r\n",
            Err("not_found"),
        );
        check(&post("/stripe"), stripe);
        check("GET /stripe HTTP/1.1\r\n\r\n", Err("method_not_allowed"));
        check(
            &post("/stripe").replace("application/json", "text/plain"),
            Err("unsupported_media_type"),
        );
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
            Ok(Route::Events(Scheme::Standard)),
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
            Ok(Route::Events(Scheme::Standard)),
        );
        check(
            "GET /healthz HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n",
            Err("length_required"),
        );
    }
}
