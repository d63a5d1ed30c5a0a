"""Scale-out by estate (DESIGN §6): instances sharing one PostgreSQL database own estates through leases.

- `ownership`: the lease loop of one instance (claim, renew, balance, give up when it cannot renew).
- `forward`: the API of any instance acts on any estate: a write for an estate another instance owns is
  forwarded to that instance's API.
- `relay`: the live feed of any instance shows every estate's incident changes (PostgreSQL NOTIFY).
"""

from gateway.cluster.ownership import EstateHandler, LeaseOwnership, OwnershipStats

__all__ = ["EstateHandler", "LeaseOwnership", "OwnershipStats"]
