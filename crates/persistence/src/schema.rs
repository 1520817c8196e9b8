//! Tables as diesel sees them, written to match `diesel print-schema` output for `migrations/`.

diesel::table! {
    /// Users, one row per (issuer, subject).
    users (id) {
        id -> Unsigned<Bigint>,
        #[max_length = 255]
        issuer -> Varchar,
        #[max_length = 255]
        subject -> Varchar,
        #[max_length = 320]
        email -> Varchar,
        #[max_length = 255]
        name -> Varchar,
        #[max_length = 2048]
        picture_url -> Nullable<Varchar>,
        created_at -> Datetime,
        last_login_at -> Datetime,
    }
}

diesel::table! {
    /// Server-side sessions, owned by the `session` crate (tower-sessions' MySqlStore layout).
    sessions (id) {
        #[max_length = 22]
        id -> Char,
        data -> Blob,
        expiry_date -> Timestamp,
    }
}

diesel::allow_tables_to_appear_in_same_query!(users, sessions);
