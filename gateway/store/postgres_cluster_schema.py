"""The tables of several gateway instances on one PostgreSQL database (DESIGN §6, gateway/cluster).

- `gateway_instances`: one row per instance id, `seen_at` refreshed every renewal; an instance not seen
  for a lease period is dead for the others (its firing escalation steps are released, its API is not
  forwarded to).
- `estate_leases`: the owner of each estate until `expires_at`; `epoch` grows with every change of owner
  (a fencing number the logs and the cluster view show). Times are the database server's clock, so
  instances with skewed clocks still agree on who owns what.
- `escalation_steps.claimed_by`: the instance that claimed a firing step, so a takeover releases only the
  dead owner's steps and never a live instance's step in mid-send.
"""

from __future__ import annotations

__all__ = ["MIGRATION_CLUSTER"]

MIGRATION_CLUSTER = """
    CREATE TABLE gateway_instances (
        instance TEXT PRIMARY KEY, api_url TEXT NOT NULL DEFAULT '',
        started_at DOUBLE PRECISION NOT NULL, seen_at DOUBLE PRECISION NOT NULL
    );
    CREATE TABLE estate_leases (
        estate TEXT PRIMARY KEY, owner TEXT, epoch BIGINT NOT NULL DEFAULT 0,
        expires_at DOUBLE PRECISION NOT NULL DEFAULT 0, acquired_at DOUBLE PRECISION
    );
    ALTER TABLE escalation_steps ADD COLUMN claimed_by TEXT
"""
