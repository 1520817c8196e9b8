-- Tokens acted on once (back-channel logout tokens, security event tokens), by issuer and `jti`, until their own
-- lifetime has passed, so that a token replayed to any instance is refused.
CREATE TABLE used_tokens (
    id VARCHAR(512) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL PRIMARY KEY,
    until DATETIME(6) NOT NULL,
    KEY used_tokens_until (until)
) ENGINE = InnoDB;
