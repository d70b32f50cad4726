"""Originate a call asynchronously and wait for its OriginateResponse, matched by ActionID.

Run against a real Asterisk with AMI_HOST/AMI_USER/AMI_SECRET set, or with no
environment to use the bundled fake server.
"""
import os
import threading
import uuid
from contextlib import ExitStack

from amiclient import AMIClient, Event
from amiclient.testing import FakeAMIServer


def main() -> None:
    with ExitStack() as stack:
        if "AMI_HOST" in os.environ:
            host, port = os.environ["AMI_HOST"], int(os.environ.get("AMI_PORT", "5038"))
            user, secret = os.environ.get("AMI_USER", "admin"), os.environ.get("AMI_SECRET", "")
        else:
            server = stack.enter_context(FakeAMIServer(users={"admin": "secret"}))
            host, port, user, secret = "127.0.0.1", server.port, "admin", "secret"
        client = stack.enter_context(AMIClient(host, port, user, secret, events="call"))

        outcome: dict[str, Event] = {}
        done = threading.Event()
        action_id = f"originate-{uuid.uuid4().hex[:12]}"  # known before sending: no race with the event

        @client.on("OriginateResponse", filter=lambda event: event.action_id == action_id)
        def on_result(event: Event) -> None:
            outcome["event"] = event
            done.set()

        response = client.action("Originate", Channel="Local/100@default", Application="Wait", Data="1",
                                 Async=True, ActionID=action_id)
        print("queued:", response.message)
        if done.wait(35):
            event = outcome["event"]
            print("result:", event["Response"], "reason", event["Reason"], "channel", event["Channel"])
        else:
            print("no OriginateResponse within 35 s")


if __name__ == "__main__":
    main()
