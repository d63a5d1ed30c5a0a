"""Guard tours (安全巡逻 / 巡更): routes of ordered checkpoints punched by access readers or patrol tag
readers, tours due by schedule, late / missed / out-of-order checkpoints as alarms, finished tours for the
KPI engine (巡更完成率, patrol_on_time_rate). See tour.py for the state machine, tracker.py for the flow."""

from gateway.patrol.alarms import RULES
from gateway.patrol.schedule import due_times
from gateway.patrol.tour import CheckpointPlan, Signal, Tour
from gateway.patrol.tracker import PatrolEstate, PatrolStore, PatrolTracker, TourRow

__all__ = [
    "RULES",
    "CheckpointPlan",
    "PatrolEstate",
    "PatrolStore",
    "PatrolTracker",
    "Signal",
    "Tour",
    "TourRow",
    "due_times",
]
