-- The change feed of the session cache: every sign-out, rotation or other change to a stored session adds a row
-- (the stored id, i.e. the hash of the session id, and the database's time); each instance reads the new rows
-- several times a second and drops those sessions from its cache. Rows older than a few minutes are deleted.
CREATE TABLE session_changes (
    seq BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    id CHAR(22) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    changed_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    KEY session_changes_changed_at (changed_at)
) ENGINE = InnoDB;
