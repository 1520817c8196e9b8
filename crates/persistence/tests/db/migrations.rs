use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Text};
use diesel_async::RunQueryDsl;

use crate::Fixture;

#[derive(QueryableByName)]
struct TableName {
    #[diesel(sql_type = Text)]
    table_name: String,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[tokio::test(flavor = "multi_thread")]
async fn migrations_create_both_tables_and_running_them_again_changes_nothing() {
    // Arrange: the fixture has run the migrations once.
    let fx = Fixture::new().await;

    // Act
    signin_persistence::run_migrations(&fx.settings).await.expect("second run succeeds");
    signin_persistence::run_migrations(&fx.settings).await.expect("third run succeeds");

    // Assert
    let mut conn = fx.pool.get().await.expect("a connection");
    let tables: Vec<TableName> = diesel::sql_query(
        "SELECT CAST(table_name AS CHAR) AS table_name FROM information_schema.tables \
         WHERE table_schema = DATABASE()",
    )
    .load(&mut conn)
    .await
    .expect("tables listed");
    let mut names: Vec<_> = tables.iter().map(|t| t.table_name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "__diesel_schema_migrations",
            "account_holds",
            "provider_grants",
            "session_changes",
            "session_owners",
            "sessions",
            "used_tokens",
            "users"
        ]
    );
    let applied: Count = diesel::sql_query("SELECT COUNT(*) AS n FROM __diesel_schema_migrations")
        .get_result(&mut conn)
        .await
        .expect("migrations counted");
    assert_eq!(applied.n, 9);
}

#[tokio::test]
async fn migrations_also_run_on_a_current_thread_runtime() {
    let fx = Fixture::new().await;
    signin_persistence::run_migrations(&fx.settings).await.expect("runs without block_in_place");
}
