-- One row per person per provider. `id` is ours and never changes; (issuer, subject) is the provider's key.
-- utf8mb4_bin: subjects are case-sensitive and must match byte for byte; names may hold any Unicode (emoji).
CREATE TABLE users (
    id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    issuer VARCHAR(255) NOT NULL,
    subject VARCHAR(255) NOT NULL,
    email VARCHAR(320) NOT NULL,
    name VARCHAR(255) NOT NULL,
    picture_url VARCHAR(2048) NULL,
    created_at DATETIME(6) NOT NULL,
    last_login_at DATETIME(6) NOT NULL,
    UNIQUE KEY users_issuer_subject (issuer, subject)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
