"""studycafe's notification service.

A new team's service in Python beside the Rust ones: it reads the seat, registration and
payment topics as its own consumer group, keeps what it tells each customer in files of its
own, and serves `GET /api/notifications` and a live stream behind the gateway. It shares
nothing with the other services but the published language: the event envelopes and the JSON
Schemas under `shared-events/schemas/`.

Layout (hexagonal, like the Rust services): `domain/` (the model, the event-to-notification
policy, the ports), `application.py` (the use case of one consumed event), `inbound/` (Kafka
consumer, HTTP API), `outbound/` (file store, delivery outbox file, JWKS verifier, schema
validation), `main.py` (configuration and wiring).
"""
