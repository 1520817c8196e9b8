use std::collections::HashSet;

use chrono::Duration;
use diesel::QueryableByName;
use diesel::sql_types::BigInt;
use diesel_async::RunQueryDsl;
use signin_domain::{UserId, UserRepository};

use crate::{Fixture, GOOGLE, identity, now};

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

async fn user_rows(fx: &Fixture) -> i64 {
    let mut conn = fx.pool.get().await.expect("a connection");
    let count: Count =
        diesel::sql_query("SELECT COUNT(*) AS n FROM users").get_result(&mut conn).await.expect("users counted");
    count.n
}

#[tokio::test(flavor = "multi_thread")]
async fn first_login_inserts_and_the_next_updates_the_same_row() {
    // Arrange
    let fx = Fixture::new().await;
    let first_at = now() - Duration::days(3);
    let first = identity(GOOGLE, "110169484474386276334", "ada@example.com", "Ada", Some("https://example.com/a.jpg"));

    // Act
    let inserted = fx.repo.record_login(&first, first_at).await.expect("first login recorded");
    let second_at = now();
    let changed = identity(GOOGLE, "110169484474386276334", "ada@lovelace.example", "Ada Lovelace", None);
    let updated = fx.repo.record_login(&changed, second_at).await.expect("second login recorded");

    // Assert
    assert_eq!(inserted.email.as_ref(), "ada@example.com");
    assert_eq!(inserted.created_at, first_at);
    assert_eq!(inserted.last_login_at, first_at);
    assert_eq!(updated.id, inserted.id);
    assert_eq!(updated.created_at, first_at, "created_at is never rewritten");
    assert_eq!(updated.last_login_at, second_at);
    assert_eq!(updated.email.as_ref(), "ada@lovelace.example");
    assert_eq!(updated.name.as_ref(), "Ada Lovelace");
    assert_eq!(updated.picture, None, "a picture that went away is cleared");
    assert_eq!(fx.repo.find(inserted.id).await.expect("found"), Some(updated));
    assert_eq!(user_rows(&fx).await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_subject_at_another_issuer_is_another_user() {
    let fx = Fixture::new().await;
    let at = now();

    let google = fx.repo.record_login(&identity(GOOGLE, "42", "a@example.com", "A", None), at).await.expect("ok");
    let other =
        fx.repo.record_login(&identity("https://idp.example", "42", "a@example.com", "A", None), at).await.expect("ok");

    assert_ne!(google.id, other.id);
    assert_eq!(other.issuer.as_ref(), "https://idp.example");
    assert_eq!(user_rows(&fx).await, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn subjects_that_differ_only_in_case_are_different_users() {
    let fx = Fixture::new().await;
    let at = now();

    let lower = fx.repo.record_login(&identity(GOOGLE, "abc", "a@example.com", "A", None), at).await.expect("ok");
    let upper = fx.repo.record_login(&identity(GOOGLE, "ABC", "b@example.com", "B", None), at).await.expect("ok");

    assert_ne!(lower.id, upper.id);
    assert_eq!(fx.repo.find(lower.id).await.expect("ok").expect("present").email.as_ref(), "a@example.com");
}

#[tokio::test(flavor = "multi_thread")]
async fn unicode_names_round_trip() {
    let fx = Fixture::new().await;
    let name = "Zoë 😀 Łukasz 山田 👩🏽‍💻";

    let user = fx.repo.record_login(&identity(GOOGLE, "u1", "z@example.com", name, None), now()).await.expect("ok");

    assert_eq!(user.name.as_ref(), name);
    assert_eq!(fx.repo.find(user.id).await.expect("ok").expect("present").name.as_ref(), name);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_picture_url_of_2048_characters_fits() {
    let fx = Fixture::new().await;
    let prefix = "https://lh3.googleusercontent.com/a/";
    let picture = format!("{prefix}{}", "x".repeat(2048 - prefix.len()));
    assert_eq!(picture.len(), 2048);

    let user =
        fx.repo.record_login(&identity(GOOGLE, "u1", "p@example.com", "P", Some(&picture)), now()).await.expect("ok");

    assert_eq!(user.picture.as_ref().map(AsRef::as_ref), Some(picture.as_str()));
}

#[tokio::test(flavor = "multi_thread")]
async fn fifty_concurrent_logins_of_one_subject_leave_one_row() {
    // Arrange
    let fx = Fixture::new().await;

    // Act: more callers than pooled connections, all racing on the same unique key.
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let repo = fx.repo.clone();
            let who = identity(GOOGLE, "same-subject", &format!("u{i}@example.com"), &format!("User {i}"), None);
            tokio::spawn(async move { repo.record_login(&who, now()).await })
        })
        .collect();
    let mut ids = HashSet::new();
    for task in tasks {
        let user = task.await.expect("task finished").expect("no login fails");
        ids.insert(user.id);
    }

    // Assert
    assert_eq!(ids.len(), 1, "every caller got the same id: {ids:?}");
    assert_eq!(user_rows(&fx).await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn finding_a_missing_id_gives_none() {
    let fx = Fixture::new().await;

    assert_eq!(fx.repo.find(UserId::new(12345)).await.expect("query ok"), None);
    fx.repo.ping().await.expect("ping ok");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_email_at_two_providers_is_two_users_and_both_are_found_by_it() {
    let fx = Fixture::new().await;
    let at = now();
    let google = fx.repo.record_login(&identity(GOOGLE, "1", "ada@example.com", "Ada", None), at).await.expect("ok");
    let other = identity("https://idp.example", "1", "ada@example.com", "Ada", None);
    let elsewhere = fx.repo.record_login(&other, at).await.expect("ok");
    fx.repo.record_login(&identity(GOOGLE, "2", "bob@example.com", "Bob", None), at).await.expect("ok");

    let found = fx.repo.find_by_email("ada@example.com").await.expect("query ok");

    assert_ne!(google.id, elsewhere.id, "never merged by email");
    let ids: HashSet<_> = found.iter().map(|user| user.id).collect();
    assert_eq!(ids, HashSet::from([google.id, elsewhere.id]));
    assert!(fx.repo.find_by_email("nobody@example.com").await.expect("query ok").is_empty());
}
