-- Which sessions a person has: one row per signed-in session, under its owner (the provider's issuer and the
-- person's subject there), with the sign-in time and the browser's User-Agent, for the session list on the profile
-- page and "sign out everywhere". `id` is the stored id (the hash of the session id), never a cookie value. Rows go
-- when their session is signed out or rotated, and when a listing finds their session expired.
CREATE TABLE session_owners (
    id CHAR(22) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
    owner VARCHAR(512) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    signed_in_at DATETIME(6) NOT NULL,
    user_agent VARCHAR(256) CHARACTER SET utf8mb4 NOT NULL DEFAULT '',
    KEY session_owners_owner (owner)
) ENGINE = InnoDB;
