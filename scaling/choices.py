from django.db import models


class Scope(models.TextChoices):
    ALL_CAMPAIGNS = "all", "All campaigns"
    SELECTED_CAMPAIGNS = "campaigns", "Only selected campaigns"
    SELECTED_DESTINATIONS = "destinations", "Only selected destination numbers"


class EventKind(models.TextChoices):
    POOL_CREATED = "pool_created", "Pool created"
    SETTINGS_CHANGED = "settings_changed", "Pool settings changed"
    NUMBER_ADDED = "number_added", "Number added"
    NUMBER_REMOVED = "number_removed", "Number removed"
    GROW_SKIPPED = "grow_skipped", "Growth skipped"
    CAP_REACHED = "cap_reached", "Maximum size reached"
    PRUNE_SKIPPED = "prune_skipped", "Pruning skipped"
    FAILED = "failed", "Failed"
    NUMBER_RELEASED = "number_released", "Released to the carrier"
    RECONCILED = "reconciled", "Carrier order reconciled"
    NUMBER_PINNED = "number_pinned", "Number pinned"
    NUMBER_UNPINNED = "number_unpinned", "Number unpinned"


class Trigger(models.TextChoices):
    MANUAL = "manual", "Staff or user action"
    GROWTH = "growth", "Auto-scaling growth"
    PRUNE = "prune", "Month-end prune"
    SETUP = "setup", "Pool set-up"
    RECONCILE = "reconcile", "Reconciliation with the carrier"
    RENEWAL = "renewal", "Release at renewal (adaptive policy)"


class ScalingPolicy(models.TextChoices):
    """How a pool's size follows its traffic (staff choose per account; docs/policy-lab.md)."""

    SEED = "seed", "The seed's rule (the growth pace on overflow, the month-end prune)"
    ADAPTIVE = (
        "adaptive",
        (
            "Adaptive (fast growth while a pool learns its traffic or regrows to what it held, the pace "
            "beyond it for a shortage; surplus released at each number's renewal)"
        ),
    )


class GrowthMode(models.TextChoices):
    STEP = "step", "A fixed number of numbers per interval"
    PERCENTAGE = "percentage", "A percentage of the pool per interval (rounded up), capped"


class OrderKind(models.TextChoices):
    PURCHASE = "purchase", "Purchase"
    RELEASE = "release", "Release"


class OrderState(models.TextChoices):
    PENDING = "pending", "Pending"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class PruneOutcome(models.TextChoices):
    PRUNED = "pruned", "Numbers removed"
    SKIPPED = "skipped", "Nothing removed"


class AlertKind(models.TextChoices):
    """Conditions auto-scaling cannot fix by itself (scaling/alerts): someone has to act."""

    AT_CAP = "at_cap", "At its maximum size while overflowing"
    NO_LOCAL_NUMBER = "no_local_number", "No local number at the carrier"
    NO_NUMBER = "no_number", "No number at the carrier"
    CARRIER_FAILING = "carrier_failing", "Carrier orders failing"
    GROWTH_BEHIND = "growth_behind", "Growth behind its pace"
    OVERFLOW_MANUAL = "overflow_manual", "Overflowing with auto-scaling off"
    BEAT_DOWN = "beat_down", "Beat not running"
    JOB_LATE = "job_late", "Periodic task late"
    PRUNE_MISSED = "prune_missed", "Month-end prune missed"
    OUTBOX_BACKLOG = "outbox_backlog", "Carrier orders backed up"


class AlertSeverity(models.TextChoices):
    PROBLEM = "problem", "Problem"
    SUGGESTION = "suggestion", "Suggestion"
