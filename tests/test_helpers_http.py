"""The helpers work the same over the HTTP (AJAM) client."""
from __future__ import annotations

from typing import Iterator

import pytest

from amiclient import ActionError
from amiclient.helpers import Append
from amiclient.http import AMIHTTPClient
from amiclient.testing import FakeAJAMServer, FakeAMIServer

SECRET = "s3cr3t!"


@pytest.fixture
def http() -> Iterator[AMIHTTPClient]:
    with FakeAMIServer(users={"admin": SECRET}) as ami, FakeAJAMServer(ami) as ajam:
        with AMIHTTPClient(ajam.url, "admin", SECRET, timeout=5.0) as client:
            yield client


def test_helpers_over_http(http: AMIHTTPClient) -> None:
    assert http.ping(timeout=2).ok
    http.db_put("fam", "k", "v, with comma")
    assert http.db_get("fam", "k") == "v, with comma" and http.db_get("fam", "nope") is None
    assert http.db_get_tree("fam") == {"/fam/k": "v, with comma"}
    http.setvar("G", "1")
    assert http.getvar("G") == "1"
    assert list(http.queue_status()) == ["support"]
    http.update_config("manager.conf", [Append("general", "webenabled", "yes")])
    assert ("webenabled", "yes") in http.get_config("manager.conf")["general"]
    assert http.command_lines("core show version")[0].startswith("Asterisk")
    assert http.originate("Local/1@test", application="Wait", variables={"A": "x,y"}).ok
    answered = http.originate("Local/1@test", application="Wait", wait=True, timeout=10)  # events via WaitEvent
    assert answered["Response"] == "Success"
    with pytest.raises(ActionError):
        http.hangup("SIP/none-1")
    with pytest.raises(ValueError):
        http.hangup("/.*/")
