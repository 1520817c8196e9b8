//! The load of `scripts/soak`: a mix of clients against the app's instances, counted exactly.
//!
//! ```text
//! soak [--direct] <seconds> <cookie-file> <instance-url>...
//! ```
//!
//! It plays a load balancer too: every 100 ms it asks each instance's `/health/ready`, and sends requests only to
//! the instances that answered 200 (so a draining instance is taken out, as a balancer would). With `--direct`
//! there is no balancer: every request goes to the one address given, whatever readiness says (instances that
//! share one listening socket, as under systemd's socket activation). The clients:
//! signed-in pages (a seeded session each), anonymous pages, a `/login` flood, garbage session cookies, and, from
//! 20 % to 60 % of the run, 60 slow-header connections that trickle half a request. One more signed-in client
//! measures its latency during the slow-client phase.
//!
//! A request counts as sent once the client has a connection for it; connection refusals (an instance that has
//! closed its listener) are counted apart, as not sent. Anything else that ends without a response is unanswered.
//! It prints one `key value` line per figure, for the script.
#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

type Error = Box<dyn std::error::Error + Send + Sync>;

#[derive(Default)]
struct Counts {
    sent: AtomicU64,
    answered: AtomicU64,
    refused: AtomicU64,
    unanswered: AtomicU64,
    server_errors: AtomicU64,
    statuses: Mutex<BTreeMap<u16, u64>>,
}

struct Pool {
    instances: Vec<String>,
    ready: Vec<AtomicBool>,
    next: AtomicU64,
}

impl Pool {
    /// A ready instance, round robin; `None` while none is.
    fn pick(&self) -> Option<&str> {
        for _ in 0..self.instances.len() {
            let n = usize::try_from(self.next.fetch_add(1, Ordering::Relaxed)).unwrap_or(0) % self.instances.len();
            if self.ready[n].load(Ordering::Relaxed) {
                return Some(&self.instances[n]);
            }
        }
        None
    }
}

#[derive(Clone, Copy)]
enum Kind {
    SignedIn,
    Anonymous,
    LoginFlood,
    Garbage,
}

async fn client(kind: Kind, pool: Arc<Pool>, counts: Arc<Counts>, cookie: String, until: Instant, seed: u64) {
    let http = match reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build() {
        Ok(http) => http,
        Err(_) => return,
    };
    let mut n = seed;
    while Instant::now() < until {
        n = n.wrapping_add(1);
        let Some(base) = pool.pick() else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let request = match kind {
            Kind::SignedIn => http.get(format!("{base}/")).header("cookie", format!("signin_session={cookie}")),
            Kind::Anonymous => http.get(format!("{base}/")),
            Kind::LoginFlood => http.get(format!("{base}/login?next=%2Fflood{n}")),
            Kind::Garbage => http.get(format!("{base}/")).header("cookie", format!("signin_session=garbage-{n:x}")),
        };
        counts.sent.fetch_add(1, Ordering::Relaxed);
        match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let _ = response.bytes().await;
                counts.answered.fetch_add(1, Ordering::Relaxed);
                if status >= 500 {
                    counts.server_errors.fetch_add(1, Ordering::Relaxed);
                }
                *counts
                    .statuses
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .entry(status)
                    .or_default() += 1;
            }
            Err(err) if err.is_connect() => {
                counts.sent.fetch_sub(1, Ordering::Relaxed);
                counts.refused.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                counts.unanswered.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Opens a connection, sends half a request head and a byte now and then, until the server closes it; again.
async fn slow(address: String, from: Instant, until: Instant, closed: Arc<AtomicU64>) {
    tokio::time::sleep_until(from.into()).await;
    while Instant::now() < until {
        let Ok(mut stream) = TcpStream::connect(&address).await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        if stream.write_all(b"GET / HTTP/1.1\r\nHost: soak\r\nX-Slow: ").await.is_err() {
            continue;
        }
        let mut buf = [0u8; 512];
        while Instant::now() < until {
            if stream.write_all(b"a").await.is_err() {
                break;
            }
            if let Ok(Ok(0) | Err(_)) = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buf)).await {
                break;
            }
        }
        closed.fetch_add(1, Ordering::Relaxed);
    }
}

fn p99(mut samples: Vec<Duration>) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    samples.sort();
    let at = (samples.len() * 99).div_ceil(100).saturating_sub(1);
    samples[at]
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let direct = args.first().is_some_and(|arg| arg == "--direct");
    if direct {
        args.remove(0);
    }
    let [seconds, cookie_file, instances @ ..] = args.as_slice() else {
        return Err("usage: soak [--direct] <seconds> <cookie-file> <instance-url>...".into());
    };
    if instances.is_empty() {
        return Err("name at least one instance".into());
    }
    if direct && instances.len() != 1 {
        return Err("--direct takes one address".into());
    }
    let run = Duration::from_secs(seconds.parse()?);
    let cookies: Vec<String> =
        std::fs::read_to_string(cookie_file)?.lines().filter(|l| !l.is_empty()).map(str::to_owned).collect();
    if cookies.is_empty() {
        return Err("no cookies".into());
    }
    let pool = Arc::new(Pool {
        instances: instances.to_vec(),
        ready: instances.iter().map(|_| AtomicBool::new(direct)).collect(),
        next: AtomicU64::new(0),
    });
    let started = Instant::now();
    let until = started + run;

    // The balancer's health checks (none without a balancer).
    let checker = {
        let pool = pool.clone();
        tokio::spawn(async move {
            if direct {
                return;
            }
            let http = reqwest::Client::builder().timeout(Duration::from_secs(1)).build().expect("a client");
            while Instant::now() < until {
                for (n, base) in pool.instances.iter().enumerate() {
                    let ready =
                        matches!(http.get(format!("{base}/health/ready")).send().await, Ok(r) if r.status() == 200);
                    pool.ready[n].store(ready, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;

    let counts = Arc::new(Counts::default());
    let mut tasks = Vec::new();
    let mix = [(Kind::SignedIn, 8), (Kind::Anonymous, 4), (Kind::LoginFlood, 2), (Kind::Garbage, 2)];
    let mut seed = 0;
    for (kind, how_many) in mix {
        for _ in 0..how_many {
            seed += 1;
            let cookie = cookies[usize::try_from(seed).unwrap_or(0) % cookies.len()].clone();
            tasks.push(tokio::spawn(client(kind, pool.clone(), counts.clone(), cookie, until, seed * 1_000_000)));
        }
    }
    // The slow clients, against the first instance, from 20 % to 60 % of the run.
    let (slow_from, slow_until) = (started + run / 5, started + run * 3 / 5);
    let slow_closed = Arc::new(AtomicU64::new(0));
    let address = instances[0].trim_start_matches("http://").trim_end_matches('/').to_owned();
    for _ in 0..60 {
        tasks.push(tokio::spawn(slow(address.clone(), slow_from, slow_until, slow_closed.clone())));
    }
    // The normal client whose latency is measured while the slow clients are there.
    let latencies = {
        let (pool, cookie) = (pool.clone(), cookies[0].clone());
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut samples = Vec::new();
            tokio::time::sleep_until((slow_from + Duration::from_secs(1)).into()).await;
            while Instant::now() < slow_until {
                let Some(base) = pool.pick() else {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                };
                let at = Instant::now();
                let ok = http.get(format!("{base}/")).header("cookie", format!("signin_session={cookie}")).send().await;
                if matches!(ok, Ok(r) if r.status() == 200) {
                    samples.push(at.elapsed());
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            samples
        })
    };

    for task in tasks {
        let _ = task.await;
    }
    let samples = latencies.await.unwrap_or_default();
    let _ = checker.await;

    let statuses = counts.statuses.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    let statuses: Vec<String> = statuses.iter().map(|(status, n)| format!("{status}:{n}")).collect();
    println!("sent {}", counts.sent.load(Ordering::Relaxed));
    println!("answered {}", counts.answered.load(Ordering::Relaxed));
    println!("unanswered {}", counts.unanswered.load(Ordering::Relaxed));
    println!("refused_connections {}", counts.refused.load(Ordering::Relaxed));
    println!("server_errors {}", counts.server_errors.load(Ordering::Relaxed));
    println!("statuses {}", statuses.join(","));
    println!("slow_connections_closed {}", slow_closed.load(Ordering::Relaxed));
    println!("signed_in_samples {}", samples.len());
    println!("signed_in_p99_ms {:.2}", p99(samples).as_secs_f64() * 1000.0);
    Ok(())
}
