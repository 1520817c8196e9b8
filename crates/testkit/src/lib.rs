#![doc = include_str!("../README.md")]

mod db;
pub mod logs;
mod mariadb;
pub mod webdriver;

pub use db::TestDb;
pub use mariadb::PrivateMariaDb;

/// The MySQL server tests use: `SIGNIN_TEST_MYSQL_URL`, else root on 127.0.0.1:3306 with no password.
pub fn mysql_server_url() -> String {
    std::env::var("SIGNIN_TEST_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".to_owned())
}
