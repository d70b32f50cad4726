"""Settings of the example site: only what the AMI views need.

The AMI connection settings live here, read from the environment, and reach
the client through ``shared_client(**AMI)`` in views.py.
"""
import os

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-not-secret")
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "amisite.urls"
INSTALLED_APPS: list = []
MIDDLEWARE: list = []
DATABASES: dict = {}
USE_TZ = True

# AMIClient keyword arguments.  events=False: the views only send actions.
AMI = {
    "host": os.environ.get("AMI_HOST", "127.0.0.1"),
    "port": int(os.environ.get("AMI_PORT", "5038")),
    "username": os.environ.get("AMI_USER", "admin"),
    "secret": os.environ.get("AMI_SECRET", ""),
    "events": False,
}
