//! The grant store on MariaDB: writes are compare-and-swap on the version, and of concurrent refreshes on several
//! instances exactly one takes the lease.

use std::time::Duration;

use signin_session::{GrantStore, MySqlGrants};

use crate::Fixture;

#[tokio::test]
async fn writes_compare_and_swap_and_one_of_many_instances_takes_the_lease() {
    let fixture = Fixture::new().await;
    // Two instances: two stores on two pools of the same database.
    let a = MySqlGrants::new(fixture.pool.clone());
    let b = MySqlGrants::new(
        signin_session::sqlx_pool(&secrecy::SecretString::from(fixture._db.url()), 4, Duration::from_secs(3))
            .expect("a pool"),
    );

    assert!(a.put("g1", "https://idp.example ada", b"\x01sealed", None).await.expect("put"));
    assert!(!b.put("g1", "https://idp.example ada", b"\x01other", None).await.expect("put"), "no overwrite");
    let stored = b.get("g1").await.expect("get").expect("stored");
    assert_eq!((stored.version, stored.sealed.as_slice()), (1, b"\x01sealed".as_slice()));

    let mut claims = Vec::new();
    for n in 0..10 {
        let store = if n % 2 == 0 { a.clone() } else { b.clone() };
        let holder = format!("holder-{n}");
        claims.push(tokio::spawn(async move {
            store.lease("g1", 1, Duration::from_secs(30), &holder).await.expect("lease")
        }));
    }
    let mut won = 0;
    for claim in claims {
        won += usize::from(claim.await.expect("joined"));
    }
    assert_eq!(won, 1, "exactly one lease of ten");

    let winner: String = sqlx::query_scalar("SELECT CAST(lease AS CHAR) FROM provider_grants WHERE id = 'g1'")
        .fetch_one(&fixture.pool)
        .await
        .expect("the lease's holder");
    assert!(winner.starts_with("holder-"), "{winner}");

    // A write (a sign-in meanwhile) keeps the lease: no second refresh starts on the new version.
    assert!(b.put("g1", "https://idp.example ada", b"\x01two", Some(1)).await.expect("put"));
    assert!(!a.put("g1", "https://idp.example ada", b"\x01stale", Some(1)).await.expect("put"), "stale version");
    assert!(!a.lease("g1", 2, Duration::from_secs(30), "second").await.expect("lease"), "the lease holds");
    a.release("g1", "not-the-holder").await.expect("release");
    assert!(!a.lease("g1", 2, Duration::from_secs(30), "second").await.expect("lease"), "only its holder ends it");
    b.release("g1", &winner).await.expect("release");
    assert!(a.lease("g1", 2, Duration::from_millis(1), "short").await.expect("lease"), "released");
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(b.lease("g1", 2, Duration::from_secs(30), "late").await.expect("lease"), "an expired lease is taken over");
    assert!(!a.lease("g1", 1, Duration::from_secs(30), "old").await.expect("lease"), "the grant moved on");

    assert!(a.put("g2", "https://idp.example ada", b"\x01x", None).await.expect("put"));
    assert!(a.put("g3", "https://idp.example bob", b"\x01y", None).await.expect("put"));
    let mut ada: Vec<String> =
        b.owned_by("https://idp.example ada").await.expect("owned").into_iter().map(|(id, _)| id).collect();
    ada.sort();
    assert_eq!(ada, ["g1", "g2"]);
    assert!(!a.delete("g1", Some(1)).await.expect("delete"), "a stale version is not deleted");
    assert!(a.delete("g1", Some(2)).await.expect("delete"));
    assert!(a.delete("g2", None).await.expect("delete"));
    assert!(b.get("g1").await.expect("get").is_none());
    assert_eq!(b.owned_by("https://idp.example ada").await.expect("owned").len(), 0);
}
