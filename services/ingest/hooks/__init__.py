"""`/hooks/{token}`: resolve the token, verify, parse, deduplicate, enqueue."""
