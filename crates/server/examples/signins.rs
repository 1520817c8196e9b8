//! The load of `scripts/signins`: whole sign-ins against one instance, as fast as they go, counted exactly.
//!
//! ```text
//! signins <seconds> <clients> <app-url>
//! ```
//!
//! The app's provider must be the hostile provider (`signin-hostile-idp`'s `serve` example), which has no login
//! page: `/login?login_hint=<name>` goes to its `/authorize`, which sends the browser straight back with a code.
//! Each client loops: `GET /login` (an attempt cookie), the provider's `/authorize`, the callback with the attempt
//! cookie (the code redeemed, the ID token verified, the user row written, a session stored), then the profile with
//! the new session cookie, which must name the person. The people are 1,000 names, so most sign-ins update a row,
//! as returning users do. It prints one `key value` line per figure.
#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// How many different people sign in.
const PEOPLE: u64 = 1000;

/// The `name=value` parts of a response's `Set-Cookie` headers that set a value (not the ones that clear).
fn cookies(response: &reqwest::Response) -> Vec<String> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter(|v| !v.contains("Max-Age=0"))
        .filter_map(|v| v.split(';').next())
        .map(str::to_owned)
        .collect()
}

fn location(response: &reqwest::Response) -> Result<String, Error> {
    let status = response.status();
    let to = response.headers().get(LOCATION).ok_or_else(|| format!("{status} without a Location"))?;
    Ok(to.to_str()?.to_owned())
}

/// One whole sign-in of `name`; fails unless the profile at the end names them.
async fn sign_in(http: &reqwest::Client, app: &str, name: &str) -> Result<(), Error> {
    let login = http.get(format!("{app}/login?login_hint={name}")).send().await?;
    let attempt = cookies(&login).join("; ");
    let authorize = location(&login)?;
    let back = location(&http.get(&authorize).send().await?)?;
    let callback = http.get(&back).header(COOKIE, &attempt).send().await?;
    if callback.status() != reqwest::StatusCode::SEE_OTHER {
        return Err(format!("callback answered {}", callback.status()).into());
    }
    let session = cookies(&callback).into_iter().find(|c| c.contains("session=")).ok_or("no session cookie")?;
    let page = http.get(format!("{app}/")).header(COOKIE, session).send().await?;
    let body = page.text().await?;
    if !body.contains(&format!("{name}@example.com")) {
        return Err("the profile does not name the person".into());
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: signins <seconds> <clients> <app-url>";
    let seconds: u64 = args.next().ok_or(usage)?.parse()?;
    let clients: usize = args.next().ok_or(usage)?.parse()?;
    let app = args.next().ok_or(usage)?;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()?;
    let next = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..clients {
        let (http, app, next, failed) = (http.clone(), app.clone(), next.clone(), failed.clone());
        workers.push(tokio::spawn(async move {
            let mut took = Vec::new();
            while Instant::now() < deadline {
                let name = format!("bench-{}", next.fetch_add(1, Ordering::Relaxed) % PEOPLE);
                let at = Instant::now();
                match sign_in(&http, &app, &name).await {
                    Ok(()) => took.push(at.elapsed()),
                    Err(err) => {
                        if failed.fetch_add(1, Ordering::Relaxed) < 3 {
                            eprintln!("a sign-in failed: {err}");
                        }
                    }
                }
            }
            took
        }));
    }
    let mut took = Vec::new();
    for worker in workers {
        took.extend(worker.await?);
    }
    let elapsed = started.elapsed().as_secs_f64();
    took.sort();
    let quantile = |q: f64| {
        let at = ((took.len() as f64 * q).ceil() as usize).saturating_sub(1).min(took.len().saturating_sub(1));
        took.get(at).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    println!("signins {}", took.len());
    println!("failed {}", failed.load(Ordering::Relaxed));
    println!("per_second {:.1}", took.len() as f64 / elapsed);
    println!("p50_ms {:.1}", quantile(0.5));
    println!("p99_ms {:.1}", quantile(0.99));
    Ok(())
}
