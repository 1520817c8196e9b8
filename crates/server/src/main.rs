//! `signin [serve [--no-migrate] | migrate | check-config | generate-key | sessions revoke --user <email>]`

use anyhow::{Context, bail};
use signin::{Application, Settings, inherited_listener, init_tracing, migrate, revoke_sessions};

/// mimalloc instead of the system allocator: a signed-in request allocates and frees many small buffers (headers,
/// the session's record, the page), and glibc's malloc was a quarter of the request's time (docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str =
    "usage: signin [serve [--no-migrate] | migrate | check-config | generate-key | sessions revoke --user <email>]";

fn main() -> anyhow::Result<()> {
    // Before the runtime's threads start: taking the socket clears the activation variables. Only `serve` listens,
    // so only it takes one (a parent's socket of another kind does not stop `generate-key` or `migrate`).
    let serves = std::env::args().nth(1).is_none_or(|command| command == "serve");
    let inherited = if serves { inherited_listener()? } else { None };
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(run(inherited))
}

async fn run(inherited: Option<std::net::TcpListener>) -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (command, flags) = args.split_first().map_or(("serve", &[][..]), |(c, f)| (*c, f));
    if matches!(command, "-h" | "--help" | "help") {
        eprintln!("{USAGE}");
        return Ok(());
    }
    if (command, flags) == ("generate-key", &[][..]) {
        // The key is the command's output, for APP__LOGIN__COOKIE_KEYS; it goes nowhere else.
        #[allow(clippy::print_stdout)]
        {
            println!("{}", signin_login::generate_cookie_key());
        }
        return Ok(());
    }
    let mut settings = Settings::load()?;
    init_tracing(&settings.log);
    match (command, flags) {
        ("serve", flags) if flags.iter().all(|f| *f == "--no-migrate") => {
            if !flags.is_empty() {
                settings.server.run_migrations = false;
            }
            let app = match inherited {
                Some(listener) => Application::build_inherited(settings.clone(), listener).await?,
                None => Application::build(settings.clone()).await?,
            };
            if app.is_inherited() {
                tracing::info!(address = %app.local_addr()?, "serving on the socket the parent handed over (LISTEN_FDS); server.host and server.port are not used");
            }
            tracing::info!(address = %app.local_addr()?, public_url = %settings.server.public_url, issuer = %settings.oidc.issuer, "listening; open {}", settings.server.public_url);
            app.run_until_stopped().await?;
        }
        ("migrate", []) => {
            migrate(&settings).await?;
            tracing::info!("migrations are up to date");
        }
        ("check-config", []) => tracing::info!("configuration is valid"),
        ("sessions", ["revoke", "--user", email]) => {
            let ended = revoke_sessions(&settings, email).await?;
            tracing::info!(sessions = ended, "ended every session of the users with that email address");
        }
        _ => bail!("{USAGE}"),
    }
    Ok(())
}
