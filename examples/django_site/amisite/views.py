"""Django views sharing one thread-safe AMI client across every request thread.

``ami()`` returns the process-wide client: created on the first request with
the ``AMI`` settings, connected lazily, reconnected after ``fork()`` (gunicorn
``--preload``, uwsgi) and closed (Logoff) when the process exits.
"""
import os
import threading

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from amiclient import ActionError, AMIClient
from amiclient.shared import shared_client


def ami() -> AMIClient:
    return shared_client(**settings.AMI)


@require_GET
def ping(request: HttpRequest) -> JsonResponse:
    pong = ami().ping()
    return JsonResponse({"pid": os.getpid(), "thread": threading.get_ident(), "action_id": pong.action_id})


@require_GET
def channels(request: HttpRequest) -> JsonResponse:
    return JsonResponse([dict(item) for item in ami().core_show_channels()], safe=False)


@csrf_exempt  # an API endpoint for other services; protect it with your own authentication
@require_POST
def hangup(request: HttpRequest, channel: str) -> JsonResponse:
    try:
        ami().hangup(channel)
    except ActionError as exc:
        return JsonResponse({"error": exc.response.message}, status=404)
    return JsonResponse({"ok": True})
