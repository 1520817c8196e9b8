DROP TABLE used_tokens;
