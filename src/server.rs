//! The accept loop: one coroutine per connection on `may` (see `connection`), under the
//! connection cap (sized under `RLIMIT_NOFILE`), each with its slot in the read deadlines'
//! table (sized from the same cap), with a back-off on accept errors; quiet connections wait
//! in the `parking`.

use std::time::{Duration, Instant};

use log::warn;
use may::io::WaitIo;
use may::net::TcpListener;

use crate::admission;
use crate::connection::{self, Idle};
use crate::deadline::Deadlines;
use crate::parking::Parking;
use crate::service::Context;

/// Stops accepting; `main` calls it on SIGTERM/SIGINT.
pub use crate::admission::begin_shutdown;

/// Descriptors kept free for the listener, database connections, logs and the private cluster.
const FDS_RESERVED: usize = 64;
/// Pause of the accept loop after an accept error such as running out of file descriptors.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Starts the read deadlines' thread for `connections_max` connections and the parking, then
/// the accept loop on a coroutine; it accepts until `admission::begin_shutdown`.
pub fn start(
    listener: TcpListener,
    context: &'static Context,
    connections_max: usize,
) -> std::io::Result<()> {
    let deadlines = Deadlines::start(connections_max)?;
    let parking = Parking::start(move |parking, idle| connection::serve(idle, context, parking))?;
    may::go!(move || accept_loop(listener, context, connections_max, deadlines, parking));
    Ok(())
}

fn accept_loop(
    listener: TcpListener,
    context: &'static Context,
    connections_max: usize,
    deadlines: &'static Deadlines,
    parking: &'static Parking<Idle>,
) {
    let mut last_warning: Option<Instant> = None;
    loop {
        let accepted = listener.accept();
        if admission::shutting_down() {
            return;
        }
        match accepted {
            Ok((stream, _)) => {
                // At the cap the new connection is closed at once; existing ones keep working.
                let Some(slot) = admission::connection_slot(connections_max) else {
                    continue;
                };
                // Below the cap a deadline slot is free: both tables have `connections_max`.
                let waker = stream.waker();
                let Some(stream) = deadlines.watch(stream, Some(waker)) else {
                    continue;
                };
                let idle = Idle::new(stream, slot);
                may::go!(move || connection::serve(idle, context, parking));
            }
            Err(error) => {
                // EMFILE and friends: back off instead of spinning, and warn at most every 10 s.
                if last_warning.is_none_or(|at| at.elapsed() > Duration::from_secs(10)) {
                    warn!("accept failed, backing off: {error}");
                    last_warning = Some(Instant::now());
                }
                may::coroutine::sleep(ACCEPT_BACKOFF);
            }
        }
    }
}

/// Raises the soft `RLIMIT_NOFILE` towards the hard limit and returns the connection cap that
/// fits below it: `wanted`, less when file descriptors are scarce. Keeping the cap below the
/// limit means accept never fails for lack of descriptors under a connection flood.
pub fn raise_connection_limit(wanted: usize) -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read or write the struct we pass.
    let soft = unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return wanted.min(1024 - FDS_RESERVED);
        }
        let needed = limit.rlim_max.min((wanted + FDS_RESERVED) as libc::rlim_t);
        if needed > limit.rlim_cur {
            let raised = libc::rlimit {
                rlim_cur: needed,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit.rlim_cur = needed;
            }
        }
        limit.rlim_cur
    };
    let soft = usize::try_from(soft).unwrap_or(usize::MAX);
    let cap = wanted.min(soft.saturating_sub(FDS_RESERVED)).max(1);
    if cap < wanted {
        warn!("file descriptor limit {soft} caps open connections at {cap}");
    }
    cap
}
