"""Driven adapters: the file store, the delivery outbox file, token verification, schemas."""
