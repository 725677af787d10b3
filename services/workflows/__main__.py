"""`python -m services.workflows`: the workflows service (default port 8002)."""

from shared.serve import serve

if __name__ == "__main__":
    serve("workflows", "services.workflows.app:create_app", 8002)
