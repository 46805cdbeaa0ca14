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
