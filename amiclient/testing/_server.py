"""``FakeAMIServer``: the server core with every action family plugged in.

The core (``_core``) accepts connections and runs sessions, login, events,
faults and the handler registry.  This module adds the families' state and
tables: basic actions (``_actions``: AstDB, variables, ...), calls
(``_calls``), queues (``_queues``), configuration files and modules
(``_config_files``), the CLI (``_cli``), and the switch model of bridges and
device states (``_model``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Dict, Mapping, Optional, Set, Tuple, Union

from ._actions import BASIC_ACTIONS
from ._calls import CALL_ACTIONS, CallSimulator, Channel, OriginateRequest, match_reason
from ._cli import CLI_ACTIONS, run_cli
from ._config_files import CONFIG_ACTIONS, DEFAULT_MODULES, ConfigFile, default_config
from ._core import ServerCore
from ._login import User
from ._model import MODEL_ACTIONS, SwitchModel
from ._queues import QUEUE_ACTIONS, Queue

if TYPE_CHECKING:
    from ._actions import BasicHost
    from ._calls import CallHost
    from ._cli import CliHost
    from ._config_files import ConfigHost
    from ._login import LoginHost
    from ._model import ModelHost
    from ._queues import QueueHost

__all__ = ["FakeAMIServer", "User"]

class FakeAMIServer(ServerCore):
    """A fake Asterisk manager on a real TCP socket, for tests.

    ``users`` maps usernames to secrets or ``User`` objects (default:
    ``{"admin": "secret"}``).  ``version`` is the banner's AMI version
    (``11.0.0``; ``2.10.6`` when ``legacy``).  ``legacy=True`` answers like
    Asterisk 13 (``Response: Follows`` Command output, ...).  Failed logins
    are answered after ``auth_fail_delay`` seconds.  Originate: calls hang up
    at once unless ``hold_calls`` (or after ``call_duration`` s); sync
    originates answer after ``originate_delay`` s, async ones report then.
    ``security_events`` adds SuccessfulAuth/RequestBadFormat events.
    ``write_timeout`` (s) disconnects clients that stop reading, like
    Asterisk's ``writetimeout`` (default: never).
    """

    def __init__(
        self,
        users: Optional[Mapping[str, Union[str, User]]] = None,
        host: str = "127.0.0.1",
        port: int = 0,
        version: Optional[str] = None,
        legacy: bool = False,
        auth_fail_delay: float = 0.0,
        *,
        asterisk_version: Optional[str] = None,
        hold_calls: bool = False,
        call_duration: float = 0.0,
        originate_delay: float = 0.0,
        security_events: bool = False,
        write_timeout: Optional[float] = None,
    ) -> None:
        super().__init__(
            users, host, port, version, legacy, auth_fail_delay, asterisk_version=asterisk_version,
            security_events=security_events, write_timeout=write_timeout,
        )
        self.hold_calls = hold_calls
        self.call_duration = call_duration
        self.originate_delay = originate_delay
        #: Originate channel globs -> ``Reason`` (4 = answered; others fail).
        self.originate_reasons: Dict[str, int] = {
            "Local/busy@*": 5, "Local/congestion@*": 8, "Local/noanswer@*": 3,
        }
        #: CLI command -> output text (or ``callable(command) -> text``).
        self.command_outputs: Dict[str, Union[str, Callable[[str], str]]] = {}
        #: The AstDB: ``(family, key) -> value``.
        self.db: Dict[Tuple[str, str], str] = {}
        #: Global dialplan variables.
        self.global_vars: Dict[str, str] = {}
        #: GetConfig/UpdateConfig files and loaded modules (see ``_config_files``).
        self.config_files: Dict[str, ConfigFile] = default_config()
        self.modules: Set[str] = set(DEFAULT_MODULES)
        #: ExtensionState answers: ``(exten, context) -> (hint, status)``.
        self.hints: Dict[Tuple[str, str], Tuple[str, int]] = {}
        #: Call queues by name (one empty ``support`` queue by default).
        self.queues: Dict[str, Queue] = {"support": Queue("support")}
        #: Last reported state of each cachable device (``Queue:<q>_avail``...).
        self.device_states: Dict[str, str] = {}
        self.calls = CallSimulator(self)
        #: Bridges, queue callers and device states, consistent with ``calls`` (see _model.py).
        self.switch = SwitchModel(self)
        self.calls.gone_hooks.append(self.switch.channel_gone)  # a channel leaves bridge and queues first
        self.calls.bridge_lookup = self.switch.bridge_of
        self.restart_hooks += [self.calls.clear, self.switch.clear]
        for table in (BASIC_ACTIONS, CALL_ACTIONS, QUEUE_ACTIONS, CONFIG_ACTIONS, CLI_ACTIONS, MODEL_ACTIONS):
            self.register_actions(table)

    def run_cli(self, command: str) -> Tuple[str, bool]:
        """The output of a CLI command and whether the command exists."""
        return run_cli(self, command)

    # -- calls ------------------------------------------------------------------

    @property
    def channels(self) -> Dict[str, Channel]:
        """The live simulated channels by name (a copy)."""
        return self.calls.snapshot()

    def originate_reason(self, channel: str) -> int:
        """The Originate ``Reason`` a channel will get (4 = answered)."""
        return match_reason(self.originate_reasons, channel)

    def simulate_call(
        self,
        channel: str,
        *,
        context: str = "default",
        exten: str = "s",
        application: str = "",
        data: str = "",
        hold: bool = True,
    ) -> Optional[str]:
        """Create a call as Originate would (events included, no OriginateResponse).

        Returns the main channel's name, or ``None`` if the call failed.
        """
        req = OriginateRequest(channel, context, exten, 1, application, data)
        chan = self.calls.run(req, self.originate_reason(channel), hold, self.call_duration)
        return chan.name if chan is not None else None

    def hangup(self, channel: str, cause: int = 16) -> bool:
        """Hang up a simulated channel (and its Local partner), with events."""
        return self.calls.hangup(channel, cause)


if TYPE_CHECKING:  # mypy checks that the server offers what every family declares it needs
    def _implements(server: FakeAMIServer) -> None:
        hosts: Tuple[LoginHost, BasicHost, CallHost, QueueHost, ConfigHost, CliHost, ModelHost] = (
            server, server, server, server, server, server, server,
        )
        del hosts
