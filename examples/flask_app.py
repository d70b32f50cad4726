"""A Flask app sharing one AMI client across all request threads (and gunicorn workers).

    pip install flask
    AMI_HOST=pbx AMI_USER=web AMI_SECRET=... flask --app examples/flask_app run

With ``gunicorn --preload`` each worker reconnects on first use after fork().
"""
from flask import Flask, jsonify

from amiclient import ActionError
from amiclient.shared import shared_client

app = Flask(__name__)


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
