//! The hostile provider as a process of its own, behaving correctly (no fault), for scripts that need a fast
//! provider with no login page: `scripts/signins` measures the app's sign-ins per second against it.
//!
//! ```text
//! serve <issuer-file>
//! ```
//!
//! Writes its issuer (`http://127.0.0.1:PORT`) to the file once it listens, then serves until SIGTERM or Ctrl-C.
//! Its client is `hostile-client` / `hostile-client-secret`; `/login?login_hint=<name>` signs `<name>` in.

use signin_hostile_idp::{HostileIdp, Scenario};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let file = std::env::args().nth(1).ok_or_else(|| anyhow::anyhow!("usage: serve <issuer-file>"))?;
    let idp = HostileIdp::start(Scenario::default()).await?;
    std::fs::write(&file, idp.issuer())?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    drop(idp);
    Ok(())
}
