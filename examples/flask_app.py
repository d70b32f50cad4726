"""A Flask app sharing one AMI client across all request threads (and gunicorn workers).

    pip install flask gunicorn
    AMI_HOST=pbx AMI_USER=web AMI_SECRET=... gunicorn --preload --workers 2 --threads 4 \\
        --chdir examples flask_app:app
    # or, for development: AMI_HOST=... flask --app examples/flask_app run

``shared_client()`` is one thread-safe client per process, configured from the
``AMI_*`` environment variables.  The check at import time fails the deploy
early when Asterisk is unreachable or refuses the login; with ``--preload`` it
runs once in the gunicorn master, and each worker, after ``fork()``, drops the
inherited connection and logs in again on its first request.
"""
import os
import threading

from flask import Flask, jsonify

from amiclient import ActionError
from amiclient.shared import shared_client

app = Flask(__name__)
shared_client().ping()  # fail fast at start-up (wrong host or secret); connects this process


@app.get("/ping")
def ping():  # type: ignore[no-untyped-def]
    pong = shared_client().ping()
    return jsonify(pid=os.getpid(), thread=threading.get_ident(), action_id=pong.action_id)


@app.get("/channels")
def channels():  # type: ignore[no-untyped-def]
    return jsonify([dict(item) for item in shared_client().core_show_channels()])


@app.post("/hangup/<path:channel>")
def hangup(channel: str):  # type: ignore[no-untyped-def]
    try:
        shared_client().hangup(channel)
    except ActionError as exc:
        return jsonify(error=exc.response.message), 404
    return jsonify(ok=True)
