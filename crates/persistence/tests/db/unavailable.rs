use std::time::{Duration, Instant};

use secrecy::SecretString;
use signin_domain::{RepositoryError, UserId, UserRepository};
use signin_persistence::{DatabaseSettings, MySqlUserRepository, PersistenceError};

use crate::{GOOGLE, identity, now};

/// A TCP port on which nothing listens.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

fn dead_settings() -> DatabaseSettings {
    DatabaseSettings {
        connect_timeout: Duration::from_secs(1),
        ..DatabaseSettings::new(SecretString::from(format!("mysql://root@127.0.0.1:{}/app", closed_port())))
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_database_is_reported_unavailable_quickly() {
    let repo = MySqlUserRepository::new(signin_persistence::pool(&dead_settings()).expect("a pool builds lazily"));
    let started = Instant::now();

    let ping = repo.ping().await;
    let find = repo.find(UserId::new(1)).await;
    let login = repo.record_login(&identity(GOOGLE, "s", "a@example.com", "A", None), now()).await;

    assert!(matches!(ping, Err(RepositoryError::Unavailable(_))), "{ping:?}");
    assert!(matches!(find, Err(RepositoryError::Unavailable(_))), "{find:?}");
    assert!(matches!(login, Err(RepositoryError::Unavailable(_))), "{login:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread")]
async fn migrations_against_a_dead_database_fail_quickly() {
    let started = Instant::now();

    let err = signin_persistence::run_migrations(&dead_settings()).await.expect_err("no server");

    assert!(err.is_unavailable(), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
}

#[test]
fn a_url_that_is_not_mysql_is_refused_at_startup() {
    for bad in ["postgres://x@h/db", "not a url", "mysql://root@127.0.0.1:3306"] {
        let settings = DatabaseSettings::new(SecretString::from(bad.to_owned()));
        assert!(matches!(signin_persistence::pool(&settings), Err(PersistenceError::InvalidUrl(_))), "{bad}");
    }
}
