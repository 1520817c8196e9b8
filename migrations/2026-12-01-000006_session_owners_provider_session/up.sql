-- The provider's session each sign-in belongs to (its issuer and the ID token's `sid`), so that a back-channel
-- logout from the provider finds the sessions begun in it. NULL when the ID token named none.
ALTER TABLE session_owners
    ADD COLUMN provider_session VARCHAR(512) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL DEFAULT NULL,
    ADD KEY session_owners_provider_session (provider_session);
