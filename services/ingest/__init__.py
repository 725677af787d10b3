"""The ingest service: `/hooks/{token}` verifies, deduplicates and enqueues webhook deliveries.

It answers 202 as soon as the run's job is stored in Redis and never touches PostgreSQL: the
routing record the workflows service mirrors into Redis is all it needs to accept a request.
"""
