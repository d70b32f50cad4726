"""Print call events as they happen, and connection changes; survives Asterisk restarts.

    AMI_HOST=pbx AMI_USER=admin AMI_SECRET=... python examples/monitor_calls.py

Ctrl-C (SIGINT) or SIGTERM stops it: the client logs off and the counters are printed.
"""
import logging
import os
import signal
import threading

from amiclient import AMIClient, Event, StateChange


def main() -> None:
    logging.basicConfig(level=logging.INFO)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    client = AMIClient(os.environ.get("AMI_HOST", "127.0.0.1"), int(os.environ.get("AMI_PORT", "5038")),
                       os.environ.get("AMI_USER", "admin"), os.environ.get("AMI_SECRET", ""),
                       events="call", keepalive=20)

    @client.on(["Newchannel", "Hangup", "DialBegin", "DialEnd"])
    def show(event: Event) -> None:
        print(f"{event.name:<11} {event.get('Channel', ''):<40} {event.get('Cause-txt', '')}")

    @client.on_state
    def state(change: StateChange) -> None:
        print(f"-- {change.state.value}", change.reason or "", f"(attempt {change.attempt})" if change.attempt else "")

    with client:
        stop.wait()
        print(client.stats)


if __name__ == "__main__":
    main()
