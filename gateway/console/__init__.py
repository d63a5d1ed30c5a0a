"""The control-room console: pages (pages.py), recent-readings rings for its charts (recent.py), the 六有
checklist (facilities.py), message catalogs (i18n/). The router lives in gateway.console.pages, imported
by gateway.api.app (not here: gateway.api.context imports this package's recent module)."""

from gateway.console.recent import RecentReadings

__all__ = ["RecentReadings"]
