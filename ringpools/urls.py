from django.urls import path, re_path

from ringpools import views, webhooks

urlpatterns = [
    # Keys are checked by the views (selectors.POOL_KEY): any text here, so that a malformed key gets
    # the endpoint's own 404 (JSON, or JavaScript for the tag), never Django's HTML page.
    re_path(r"^api/v1/ringpools/(?P<pool_key>[^/]*)/numbers$", views.numbers, name="ringpool-numbers"),
    re_path(
        r"^api/v1/ringpools/(?P<pool_key>[^/]*)/numbers/release$", views.release, name="ringpool-release"
    ),
    re_path(r"^api/v1/", views.api_not_found),
    # Newlines too; `.JS` as well (ringpools.errors answers the rest of /tag/ in JavaScript).
    re_path(r"^tag/(?P<pool_key>(?s:.*))\.[jJ][sS]$", views.tag, name="ringpool-tag"),
    path("webhooks/calls", webhooks.calls, name="webhook-calls"),
    path("healthz", views.healthz, name="healthz"),
    path("livez", views.livez, name="livez"),
    path("demo/", views.demo_landing, name="demo-landing"),
]
