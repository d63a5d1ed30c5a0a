"""One module per dashboard; each has `UID` and `build() -> Board`."""

from dashboards.boards import control_room, facilities, gates, gateway_health, generator, septic

BOARDS = (control_room, facilities, generator, septic, gates, gateway_health)

__all__ = ["BOARDS"]
