"""Database access: SQLModel tables, the async engine and session scope, Alembic migrations."""
