"""Routes of the events feed and webhooks, included under /api/v1/ before api.urls
(whose last route answers every other path 404)."""

from django.urls import path

from . import api

urlpatterns = [
    path("events/", api.EventFeedView.as_view(), name="events-feed"),
    path("webhooks/", api.WebhookListView.as_view(), name="webhook-list"),
    path("webhooks/<uuid:pk>/", api.WebhookDetailView.as_view(), name="webhook-detail"),
    path("webhooks/<uuid:pk>/replay/", api.WebhookReplayView.as_view(), name="webhook-replay"),
    path(
        "webhooks/<uuid:pk>/deliveries/",
        api.WebhookDeliveriesView.as_view(),
        name="webhook-deliveries",
    ),
]
