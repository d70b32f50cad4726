"""How channels make calls: one :class:`Call` per Linkedid, its caller and its callee.

State of one call (``Call.state``)::

    Newchannel (first channel of a Linkedid)
          |
          v
      ringing --DialEnd ANSWER / AgentConnect / caller and callee bridged--> answered
          |                                                                     |
          +--------------- last channel of the Linkedid hangs up ---------------+--> ended

Parties:

* caller: the channel whose Uniqueid is the Linkedid (the first channel; for
  an Originate, the originated channel).  An Originate's ``DialBegin`` with
  no calling channel names that channel as its destination: it marks the
  call ``originated`` and never makes it its own callee.
* callee: the destination of a ``DialBegin`` whose calling channel belongs
  to the call (the first one; the one that answers, on ``DialEnd ANSWER``),
  else the first other channel of the call bridged with the caller.  Its
  number is the callee channel's caller ID (``Dial`` sets it to the number
  dialed), else the caller's connected line unless that only repeats the
  caller's own number (a Local channel quirk), else the callee's extension.
* transfers: after a ``BlindTransfer`` the transferee takes the transferer's
  place (a transferred caller's peer becomes the caller) and the next dial
  names the new callee; after an ``AttendedTransfer`` the transfer target
  (named, or else the transferee's new bridge peer) becomes the callee.  The call keeps its Linkedid throughout.
"""
from __future__ import annotations

from typing import Any, Callable, Deque, Dict, List, Optional

from ._records import Call, Change, Channel, Party, _copy

__all__ = ["CallBook"]

Headers = Dict[str, str]
_UNKNOWN = frozenset(("", "<unknown>"))


def _known(value: str) -> str:
    return "" if value in _UNKNOWN else value


class CallBook:
    """The call-tracking half of :class:`~amiclient.live._model.LiveModel`."""

    channels: Dict[str, Channel]
    calls: Dict[str, Call]
    ended_calls: Deque[Call]
    changes: List[Change]
    clock: Callable[[], float]
    bridges: Dict[str, Any]

    def _mark(self, category: str) -> None:  # pragma: no cover - see LiveModel
        raise NotImplementedError

    def _change(self, kind: str, key: Any, old: Any, new: Any) -> None:
        self.changes.append(Change(kind, key, old, new))

    def _put_call(self, old: Optional[Call], new: Call) -> None:
        self.calls[new.linkedid] = new
        self._mark("calls")
        if old is None:
            self._change("call_started", new.linkedid, None, new)
        elif old.answered is None and new.answered is not None:
            self._change("call_answered", new.linkedid, old, new)
        else:
            self._change("call_changed", new.linkedid, old, new)

    # -- parties -------------------------------------------------------------------

    def _caller_party(self, channel: Channel) -> Party:
        return Party(_known(channel.caller_num), _known(channel.caller_name), channel.name, channel.uniqueid)

    def _callee_party(self, callee: Channel, caller: Optional[Party]) -> Party:
        own = caller.number if caller is not None else ""
        number = _known(callee.caller_num)  # Dial gives the outgoing channel the dialed number
        if not number or number == own:
            caller_channel = self.channels.get(caller.uniqueid) if caller is not None else None
            connected = _known(caller_channel.connected_num) if caller_channel is not None else ""
            number = connected if connected and connected != own else _known(callee.exten)
        name = ""
        caller_channel = self.channels.get(caller.uniqueid) if caller is not None else None
        if caller_channel is not None and _known(caller_channel.connected_num) == number:
            name = _known(caller_channel.connected_name)
        return Party(number, name, callee.name, callee.uniqueid)

    def _refresh(self, call: Call) -> Call:
        """The call with its parties re-read from their channels (if still up)."""
        caller, callee = call.caller, call.callee
        if caller is not None:
            channel = self.channels.get(caller.uniqueid)
            if channel is not None:
                caller = self._caller_party(channel)
        if callee is not None:
            channel = self.channels.get(callee.uniqueid)
            if channel is not None:
                callee = self._callee_party(channel, caller)
        if caller == call.caller and callee == call.callee:
            return call
        return _copy(call, caller=caller, callee=callee)  # type: ignore[no-any-return]

    def _set_callee(self, call: Call, uid: str) -> Call:
        channel = self.channels.get(uid)
        if channel is None or (call.caller is not None and call.caller.uniqueid == uid):
            return call
        return _copy(call, callee=self._callee_party(channel, call.caller))  # type: ignore[no-any-return]

    # -- channel hooks -------------------------------------------------------------------

    def _call_add_channel(self, channel: Channel) -> None:
        lid = channel.linkedid
        old = self.calls.get(lid)
        if old is None:
            caller = self._caller_party(channel)
            self._put_call(None, Call(lid, (channel.uniqueid,), caller, None, "dialplan", channel.created))
            return
        new = _copy(old, channels=old.channels + (channel.uniqueid,))
        if channel.uniqueid == lid:  # the originating channel showed up after another
            new = _copy(new, caller=self._caller_party(channel))
        self._put_call(old, new)

    def _call_remove_channel(self, channel: Channel) -> None:
        old = self.calls.get(channel.linkedid)
        if old is None or channel.uniqueid not in old.channels:
            return
        rest = tuple(u for u in old.channels if u != channel.uniqueid)
        if rest:
            self._put_call(old, _copy(old, channels=rest))
            return
        del self.calls[old.linkedid]
        self._mark("calls")
        ended = _copy(old, channels=(), ended=self.clock())
        self.ended_calls.append(ended)
        self._change("call_ended", old.linkedid, old, ended)

    def _call_channel_changed(self, old_channel: Channel, channel: Channel) -> None:
        if (old_channel.name, old_channel.caller_num, old_channel.caller_name, old_channel.connected_num,
                old_channel.connected_name, old_channel.exten) == (
                channel.name, channel.caller_num, channel.caller_name, channel.connected_num,
                channel.connected_name, channel.exten):
            return  # nothing a party shows
        call = self.calls.get(channel.linkedid)
        if call is None:
            return
        uid = channel.uniqueid
        if (call.caller is not None and call.caller.uniqueid == uid) or (
            call.callee is not None and call.callee.uniqueid == uid
        ):
            new = self._refresh(call)
            if new is not call:
                self._put_call(call, new)

    def _answer(self, call: Call) -> Call:
        if call.answered is not None:
            return call
        return _copy(call, answered=self.clock())  # type: ignore[no-any-return]

    def _call_bridged(self, uid: str, bid: str) -> None:
        channel = self.channels.get(uid)
        if channel is None:
            return
        call = self.calls.get(channel.linkedid)
        bridge = self.bridges.get(bid)
        if call is None or call.caller is None or bridge is None:
            return
        members = bridge.channels
        if call.caller.uniqueid not in members:
            return
        new = call
        if new.callee is None:
            for other in members:
                peer = self.channels.get(other)
                if other != call.caller.uniqueid and peer is not None and peer.linkedid == call.linkedid:
                    new = self._set_callee(new, other)
                    break
        if new.callee is not None and new.callee.uniqueid in members:
            new = self._answer(new)
        if new is not call:
            self._put_call(call, new)

    # -- dials and transfers -----------------------------------------------------------

    def _on_dial_begin(self, ev: Headers) -> None:
        getattr(self, "_touch")(ev)  # noqa: B009 (defined by the class this mixes into)
        dest_uid = ev.get("DestUniqueid")
        if not dest_uid:
            return
        from ._model import header
        dest = self.channels.get(dest_uid)
        if dest is None:
            return
        calling = ev.get("Uniqueid")
        if not calling:  # an Originate: the destination is the originated channel, the caller
            call = self.calls.get(dest.linkedid)
            if call is not None and call.direction != "originated":
                self._put_call(call, _copy(call, direction="originated"))
            return
        source = self.channels.get(calling)
        call = self.calls.get(source.linkedid if source is not None else header(ev, "Linkedid"))
        if call is not None and call.callee is None:
            new = self._set_callee(call, dest_uid)
            if new is not call:
                self._put_call(call, new)

    def _on_dial_end(self, ev: Headers) -> None:
        getattr(self, "_touch")(ev)  # noqa: B009 (defined by the class this mixes into)
        dest_uid, calling = ev.get("DestUniqueid"), ev.get("Uniqueid")
        if not dest_uid or not calling or ev.get("DialStatus") != "ANSWER":
            return
        source = self.channels.get(calling)
        call = self.calls.get(source.linkedid) if source is not None else None
        if call is None:
            return
        new = call
        caller_up = call.caller is not None and call.caller.uniqueid in self.channels
        from_caller = call.caller is not None and call.caller.uniqueid == calling
        if new.callee is None or (new.callee.uniqueid != dest_uid and (from_caller or not caller_up)):
            new = self._set_callee(new, dest_uid)
        new = self._answer(new)
        if new is not call:
            self._put_call(call, new)

    def _on_agent_connect(self, ev: Headers) -> None:
        source = self.channels.get(ev.get("Uniqueid", ""))
        call = self.calls.get(source.linkedid) if source is not None else None
        if call is None:
            return
        new = call
        dest_uid = ev.get("DestUniqueid", "")
        if dest_uid and (new.callee is None or new.callee.uniqueid != dest_uid):
            new = self._set_callee(new, dest_uid)
        new = self._answer(new)
        if new is not call:
            self._put_call(call, new)

    def _transfer(self, transferer: str, transferee: str, target: str) -> None:
        for call in list(self.calls.values()):
            new = call
            if call.caller is not None and call.caller.uniqueid == transferer:
                peer = self.channels.get(transferee)
                if peer is None:
                    continue
                new = _copy(call, caller=self._caller_party(peer), callee=None)
            elif call.callee is not None and call.callee.uniqueid == transferer:
                new = _copy(call, callee=None)
            else:
                continue
            if not target:  # the transferee's new peer, if it is already bridged with one
                peer = self.channels.get(transferee)
                bridge = self.bridges.get(peer.bridge_id) if peer is not None and peer.bridge_id else None
                others = [u for u in (bridge.channels if bridge is not None else ()) if u not in (transferee, transferer)]
                target = others[0] if others else ""
            if target:
                new = self._set_callee(new, target)
            self._put_call(call, new)

    def _on_blind_transfer(self, ev: Headers) -> None:
        if ev.get("Result", "Success") == "Success":
            self._transfer(ev.get("TransfererUniqueid", ""), ev.get("TransfereeUniqueid", ""), "")

    def _on_attended_transfer(self, ev: Headers) -> None:
        if ev.get("Result", "Success") == "Success":
            self._transfer(ev.get("OrigTransfererUniqueid", ""), ev.get("TransfereeUniqueid", ""),
                           ev.get("TransferTargetUniqueid", ""))

    # -- after a snapshot -----------------------------------------------------------------

    def _calls_after_load(self) -> None:
        """Give calls that a snapshot revealed a caller and, if bridged together, a callee."""
        for call in list(self.calls.values()):
            new = call
            origin = self.channels.get(call.linkedid)
            if origin is not None and (new.caller is None or new.caller.uniqueid != origin.uniqueid) \
                    and not (new.caller is not None and new.caller.uniqueid in self.channels):
                new = _copy(new, caller=self._caller_party(origin))
            caller_channel = self.channels.get(new.caller.uniqueid) if new.caller is not None else None
            if new.callee is None and caller_channel is not None and caller_channel.bridge_id is not None:
                bridge = self.bridges.get(caller_channel.bridge_id)
                peers = [u for u in (bridge.channels if bridge is not None else ()) if u != caller_channel.uniqueid]
                if not peers:
                    peers = [c.uniqueid for c in self.channels.values()
                             if c.bridge_id == caller_channel.bridge_id and c.uniqueid != caller_channel.uniqueid]
                if peers:
                    new = self._answer(self._set_callee(new, peers[0]))
            new = self._refresh(new)
            if new is not call:
                self._put_call(call, new)
