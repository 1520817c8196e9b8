-- What a person granted this site at their provider: one row per (issuer, subject, client), shared by all of the
-- person's sessions and every instance. `id` is SHA-256 of the owner and the client id (base64url); `owner` the
-- issuer and subject, for ending every grant of a person. `sealed` holds the tokens and what they cover, encrypted
-- with AES-256-GCM under `login.tokens.keys` and bound to `id`: a row copied out of the table, or into another
-- row, is useless without the key. `version` grows with every write (compare-and-swap); `lease_until` and `lease`
-- (its holder's random id) are the one refresh under way across the fleet.
CREATE TABLE provider_grants (
    id CHAR(43) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
    owner VARCHAR(512) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    version BIGINT UNSIGNED NOT NULL,
    sealed BLOB NOT NULL,
    lease_until DATETIME(6) NULL,
    lease CHAR(22) CHARACTER SET ascii COLLATE ascii_bin NULL,
    updated_at DATETIME(6) NOT NULL,
    KEY provider_grants_owner (owner)
) ENGINE = InnoDB;
