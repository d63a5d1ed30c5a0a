"""Scale-out settings (DESIGN §6, gateway/cluster): several instances on one PostgreSQL database, each
owning a share of the estates through leases.

One optional `cluster:` block in the site file; every instance may read the same file and differ only
by its id, e.g. from the environment::

    gateway_id: ${GATEWAY_ID}
    store: {engine: postgres, dsn: "${EG_PG_DSN}"}
    cluster:
      enabled: true
      lease_seconds: 15
      advertise_url: "http://${HOSTNAME}:8080"

This module imports nothing from `schema` (schema imports it).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ClusterConfig(_Strict):
    enabled: bool = Field(
        False,
        description="Share the estates with other instances on the same PostgreSQL database (needs "
        "store.engine: postgres); off: this instance owns every estate of its file",
    )
    lease_seconds: float = Field(
        15.0, ge=3, le=600, description="An estate whose owner has not renewed for this long is taken over"
    )
    renew_interval: float | None = Field(
        None, gt=0, description="Seconds between renewals (and claims); default a third of lease_seconds"
    )
    estates: list[str] = Field(
        default_factory=lambda: ["*"],
        description="Estates this instance may own (ids or globs such as 'sz-*'); others it never takes",
    )
    prefer: list[str] = Field(
        default_factory=list,
        description="Estates (ids or globs) this instance takes before any other when they are free",
    )
    balance: bool = Field(
        True,
        description="Hand estates above a fair share (estates / live instances) to instances that have "
        "fewer; off: keep what it holds until it stops",
    )
    advertise_url: str | None = Field(
        None,
        description="Base URL at which the other instances reach this one's API (they forward writes for "
        "this instance's estates to it); default http://<api.host>:<api port>",
    )
    forward_timeout: float = Field(10.0, gt=0, le=120, description="Seconds to wait for a forwarded request")

    @property
    def renew_every(self) -> float:
        return self.renew_interval if self.renew_interval is not None else self.lease_seconds / 3

    @model_validator(mode="after")
    def _renew_within_lease(self) -> ClusterConfig:
        if self.renew_every >= self.lease_seconds:
            raise ValueError("renew_interval must be shorter than lease_seconds")
        return self
