"""The notification model, the policy that turns events into notifications, and the ports.

Nothing here knows Kafka, HTTP or files: plain Python that the tests drive directly.
"""
