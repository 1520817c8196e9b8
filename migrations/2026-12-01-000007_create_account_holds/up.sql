-- Accounts that must not sign in until released: the owner key (issuer and subject), why (e.g. a RISC
-- `account-disabled` event's reason), and since when. A row goes when the provider reports the account enabled.
CREATE TABLE account_holds (
    owner VARCHAR(512) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL PRIMARY KEY,
    reason VARCHAR(64) CHARACTER SET utf8mb4 NOT NULL DEFAULT '',
    since DATETIME(6) NOT NULL
) ENGINE = InnoDB;
