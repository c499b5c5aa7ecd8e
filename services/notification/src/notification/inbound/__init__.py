"""Driving adapters: the Kafka consumer and the HTTP API."""
