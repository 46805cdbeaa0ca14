from django.db import models


class NumberType(models.TextChoices):
    LOCAL = "local", "Local"
    TOLL_FREE = "toll_free", "Toll-free"


class OverflowMode(models.TextChoices):
    OVERFLOW_NUMBER = "overflow_number", "Show the overflow number"
    DESTINATION_NUMBER = "destination_number", "Show the destination number"


class NumberState(models.TextChoices):
    ACTIVE = "active", "Active"
    # Out of rotation at once, still held (and billed) until the carrier confirms the release.
    RELEASING = "releasing", "Releasing (out of rotation, the carrier has not confirmed yet)"
    RELEASED = "released", "Released (given back to the carrier)"

    @classmethod
    def held(cls) -> tuple[str, ...]:
        """States in which the account still holds the number at the carrier (and pays for it)."""
        return (cls.ACTIVE, cls.RELEASING)


class NumberRole(models.TextChoices):
    ROTATING = "rotating", "Rotating (shown to one visitor at a time)"
    OVERFLOW = "overflow", "Overflow (shown when no rotating number is free)"


class PresentationKind(models.TextChoices):
    PROMO = "promo", "Promo number"
    OVERFLOW = "overflow", "Overflow number"
    DESTINATION = "destination", "Destination number"


class CallAttribution(models.TextChoices):
    LEASE = "lease", "Visitor holding the number"
    LATE = "late", "Previous holder (late call)"
    OVERFLOW = "overflow", "Overflow: no visitor"
    NONE = "none", "No visitor"
