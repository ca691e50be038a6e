"""Log watching: a chunked pattern scanner, a rotation-safe file follower, persisted positions."""
