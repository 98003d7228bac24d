"""Step kinds that exist only for tests: proof that a kind is its package plus one registry line."""
