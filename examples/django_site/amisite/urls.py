from django.urls import path

from . import views

urlpatterns = [
    path("ping", views.ping),
    path("channels", views.channels),
    path("hangup/<path:channel>", views.hangup),
]
