from django.urls import path

from ringpools import views, webhooks

urlpatterns = [
    path("api/v1/ringpools/<str:pool_key>/numbers", views.numbers, name="ringpool-numbers"),
    path("api/v1/ringpools/<str:pool_key>/numbers/release", views.release, name="ringpool-release"),
    path("tag/<str:pool_key>.js", views.tag, name="ringpool-tag"),
    path("webhooks/calls", webhooks.calls, name="webhook-calls"),
    path("healthz", views.healthz, name="healthz"),
    path("livez", views.livez, name="livez"),
    path("demo/", views.demo_landing, name="demo-landing"),
]
