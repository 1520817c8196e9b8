ALTER TABLE session_owners DROP KEY session_owners_provider_session, DROP COLUMN provider_session;
