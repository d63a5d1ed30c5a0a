"""Maintenance duties (维保): due dates by calendar or run-hours, generator test runs detected from the
generator's readings, due-soon reminders to the engineer on call, ONE overdue alarm per duty, completion
records (who, when, note, detected | recorded). See duty.py (due dates), tracker.py (the flow)."""

from gateway.maintenance.alarms import RULE
from gateway.maintenance.duty import DutyState, Judgement, judge
from gateway.maintenance.reminder import Reminder
from gateway.maintenance.tracker import DutyView, MaintenanceEstate, MaintenanceStore, MaintenanceTracker

__all__ = [
    "RULE",
    "DutyState",
    "DutyView",
    "Judgement",
    "MaintenanceEstate",
    "MaintenanceStore",
    "MaintenanceTracker",
    "Reminder",
    "judge",
]
