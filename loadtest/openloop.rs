//! Open-loop load generator for the insert path: sends `gen.py` requests (unique ids, each
//! signed) at a fixed rate and measures each answer from the moment its request was *due*,
//! not from when it went out, so a slow answer that delays the next send is still counted
//! (wrk2's latency correction). oha cannot sign each request, and wrk is closed-loop.
//!
//! `cargo run --release --example openloop -- ADDR FILE RATE SECONDS CONNECTIONS`
//! prints one JSON line. Connection `c` sends requests `c`, `c + C`, `c + 2C`, ... and
//! request `k` is due at `start + k / RATE`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

type Failure = Box<dyn std::error::Error + Send + Sync>;

/// What one request got: latency from its due time, status (0 = no answer), accepted.
struct Outcome {
    latency: Duration,
    status: u16,
    accepted: bool,
}

fn main() -> Result<(), Failure> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [addr, file, rate, seconds, connections] = args.as_slice() else {
        return Err("usage: openloop ADDR FILE RATE SECONDS CONNECTIONS".into());
    };
    let rate: f64 = rate.parse()?;
    let seconds: f64 = seconds.parse()?;
    let connections: usize = connections.parse()?;
    let total = (rate * seconds) as usize;
    let requests = load(file, addr, total)?;
    let interval = Duration::from_secs_f64(1.0 / rate);
    let start = Instant::now() + Duration::from_millis(300);
    let outcomes: Vec<Outcome> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..connections)
            .map(|c| {
                let requests = &requests;
                scope.spawn(move || send_share(addr, requests, c, connections, start, interval))
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|worker| worker.join().unwrap_or_default())
            .collect()
    });
    report(&outcomes, rate, seconds, connections, start.elapsed());
    Ok(())
}

/// Reads `total` requests of a `gen.py` file into raw HTTP bytes.
fn load(file: &str, addr: &str, total: usize) -> Result<Vec<Vec<u8>>, Failure> {
    let mut requests = Vec::with_capacity(total);
    for line in BufReader::new(std::fs::File::open(file)?).lines() {
        let line = line?;
        if line.starts_with('#') {
            continue;
        }
        let mut fields = line.splitn(4, '\t');
        let (Some(id), Some(ts), Some(signature), Some(body)) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(format!("malformed line in {file}").into());
        };
        let head = format!(
            "POST /webhook HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
             webhook-id: {id}\r\nwebhook-timestamp: {ts}\r\nwebhook-signature: {signature}\r\n\
             content-length: {}\r\n\r\n",
            body.len()
        );
        requests.push([head.as_bytes(), body.as_bytes()].concat());
        if requests.len() == total {
            return Ok(requests);
        }
    }
    Err(format!("{file} holds fewer than {total} requests").into())
}

/// Sends this connection's share on schedule; reconnects after a failed exchange.
fn send_share(
    addr: &str,
    requests: &[Vec<u8>],
    first: usize,
    step: usize,
    start: Instant,
    interval: Duration,
) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    let mut stream: Option<TcpStream> = None;
    for (k, request) in requests.iter().enumerate().skip(first).step_by(step) {
        let due = start + interval * k as u32;
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        let answer = match stream.as_mut() {
            Some(stream) => exchange(stream, request),
            None => connect(addr).and_then(|mut fresh| {
                let answer = exchange(&mut fresh, request);
                stream = Some(fresh);
                answer
            }),
        };
        let (status, accepted) = answer.unwrap_or_else(|_| {
            stream = None;
            (0, false)
        });
        outcomes.push(Outcome {
            latency: due.elapsed(),
            status,
            accepted,
        });
    }
    outcomes
}

fn connect(addr: &str) -> Result<TcpStream, Failure> {
    let stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    Ok(stream)
}

/// One request and its answer on a keep-alive connection: (status, accepted).
fn exchange(stream: &mut TcpStream, request: &[u8]) -> Result<(u16, bool), Failure> {
    stream.write_all(request)?;
    let mut answer = Vec::with_capacity(256);
    let mut chunk = [0u8; 1024];
    loop {
        let read = stream.read(&mut chunk)?;
        if read == 0 {
            return Err("connection closed".into());
        }
        answer.extend_from_slice(chunk.get(..read).unwrap_or_default());
        let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(answer.get(..end).unwrap_or_default()).into_owned();
        let length: usize = head
            .lines()
            .find_map(|line| line.strip_prefix("content-length: "))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or(0);
        if answer.len() < end + 4 + length {
            continue;
        }
        let status = head
            .get(9..12)
            .and_then(|code| code.parse().ok())
            .unwrap_or(0);
        let body = answer.get(end + 4..).unwrap_or_default();
        let accepted = body.windows(10).any(|w| w == b"\"accepted\"");
        return Ok((status, accepted));
    }
}

fn report(outcomes: &[Outcome], rate: f64, seconds: f64, connections: usize, took: Duration) {
    let mut latencies: Vec<Duration> = outcomes.iter().map(|o| o.latency).collect();
    latencies.sort_unstable();
    let percentile = |p: f64| {
        let index = ((latencies.len() as f64 * p).ceil() as usize).saturating_sub(1);
        latencies
            .get(index)
            .map_or(0.0, |latency| latency.as_secs_f64() * 1000.0)
    };
    let count = |keep: fn(&Outcome) -> bool| outcomes.iter().filter(|o| keep(o)).count();
    println!(
        "{{\"mode\":\"open loop, unique signed ids (insert path), latency from due time\",\
         \"rate_per_s\":{rate},\"duration_s\":{seconds},\"connections\":{connections},\
         \"sent\":{},\"accepted\":{},\"non_2xx\":{},\"no_answer\":{},\"achieved_rps\":{:.1},\
         \"p50_ms\":{:.3},\"p90_ms\":{:.3},\"p99_ms\":{:.3},\"p99_9_ms\":{:.3}}}",
        outcomes.len(),
        count(|o| o.accepted),
        count(|o| o.status != 0 && !(200..300).contains(&o.status)),
        count(|o| o.status == 0),
        outcomes.len() as f64 / took.as_secs_f64(),
        percentile(0.50),
        percentile(0.90),
        percentile(0.99),
        percentile(0.999),
    );
}
