"""DDL of the two-person rule's table and the users' job column for PostgreSQL, apart from the mixin
(gateway/store/postgres_commands.py) so postgres_schema can import it without a cycle."""

__all__ = ["MIGRATION_COMMANDS_PG"]

MIGRATION_COMMANDS_PG = """
    CREATE TABLE command_requests (
        id TEXT PRIMARY KEY, estate TEXT NOT NULL, device TEXT NOT NULL, command TEXT NOT NULL,
        reason TEXT NOT NULL, requested_by TEXT NOT NULL, confirm_by TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL, expires_at DOUBLE PRECISION NOT NULL, state TEXT NOT NULL,
        decided_by TEXT, decided_at DOUBLE PRECISION, outcome TEXT, detail TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX command_requests_estate ON command_requests(estate, created_at);
    ALTER TABLE users ADD COLUMN job TEXT
"""
