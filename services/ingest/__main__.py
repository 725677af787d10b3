"""`python -m services.ingest`: the webhook ingest service (default port 8003)."""

from shared.serve import serve

if __name__ == "__main__":
    serve("ingest", "services.ingest.app:create_app", 8003)
