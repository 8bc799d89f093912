"""Persistence: the SQLite catalog (source of truth) and the vector stores built from it."""
