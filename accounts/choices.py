from django.db import models


class Role(models.TextChoices):
    SUPER_USER = "super_user", "Super user"
    MANAGER = "manager", "Manager"
    MEMBER = "member", "Member"
