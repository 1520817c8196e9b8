-- The table tower-sessions-sqlx-store's MySqlStore reads and writes, kept in the app's own database.
-- `id` is a 22-character base64url session id: ascii_bin so ids differing only in case stay distinct.
-- `data` is the MessagePack-encoded record (64 KiB at most). The index serves the expired-session sweep.
-- `expiry_date` is always written explicitly, so no DEFAULT / ON UPDATE behaviour is relied on.
CREATE TABLE sessions (
    id CHAR(22) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
    data BLOB NOT NULL,
    expiry_date TIMESTAMP(6) NOT NULL,
    KEY sessions_expiry_date (expiry_date)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
