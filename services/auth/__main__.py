"""`python -m services.auth`: the auth service (default port 8001)."""

from shared.serve import serve

if __name__ == "__main__":
    serve("auth", "services.auth.app:create_app", 8001)
