from django.urls import path

from scaling.pages import views

urlpatterns = [
    path("settings/", views.settings_index, name="settings-index"),
    # The contract path of SPEC §9: Settings → Network → RingPool Auto-Scaling.
    path(
        "settings/network/ringpool-auto-scaling/",
        views.auto_scaling_settings,
        name="auto-scaling-settings",
    ),
    path("pools/", views.pool_list, name="pool-list"),
    path("alerts/", views.alert_list, name="alert-list"),
    path("pools/<int:pool_id>/health/", views.pool_health, name="pool-health"),
]
