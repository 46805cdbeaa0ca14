from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin

from accounts.models import Account, Membership, User


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    raw_id_fields = ("user", "account")


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    inlines = [MembershipInline]
    list_display = ("username", "email", "first_name", "last_name", "is_staff", "is_active", "last_login")


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "timezone", "auto_scaling_available", "created_at")
    list_filter = ("auto_scaling_available",)
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}
    readonly_fields = ("created_at",)
    inlines = [MembershipInline]
    fieldsets = (
        (None, {"fields": ("name", "slug", "timezone", "created_at")}),
        ("RingPool Auto-Scaling", {"fields": ("auto_scaling_available",)}),
        ("Carrier", {"fields": ("carrier_account_sid", "carrier_auth_token"), "classes": ("collapse",)}),
    )


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ("user", "account", "role", "created_at")
    list_filter = ("role",)
    list_select_related = ("user", "account")
    raw_id_fields = ("user", "account")
    search_fields = ("user__username", "user__email", "account__name")
