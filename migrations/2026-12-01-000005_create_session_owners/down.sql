DROP TABLE session_owners;
