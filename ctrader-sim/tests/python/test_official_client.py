"""Checks of the interop script's own plumbing (the session itself runs from ctrader-sim/tests/sim_interop.rs,
which starts the real simulator)."""

from __future__ import annotations

import struct

import official_client as oc


def test_payload_type_table_comes_from_the_official_definitions():
    # The numbers are Spotware's ProtoOAPayloadType values, read from the official classes' defaults.
    assert oc.CLASSES[2100].__name__ == "ProtoOAApplicationAuthReq"
    assert oc.CLASSES[2126].__name__ == "ProtoOAExecutionEvent"
    assert oc.CLASSES[2131].__name__ == "ProtoOASpotEvent"
    assert oc.CLASSES[51].__name__ == "ProtoHeartbeatEvent"
    assert oc.CLASSES[50].__name__ == "ProtoErrorRes"


def test_trendbar_decoding_is_low_plus_deltas_in_1e5_units():
    tb = oc.model.ProtoOATrendbar(
        volume=10, period=oc.model.H1, low=109_950, deltaOpen=50, deltaHigh=120, deltaClose=80,
        utcTimestampInMinutes=29_000_000,
    )
    t, o, h, l, c = oc.decode_bar(tb)
    assert t == 29_000_000 * 60
    assert (o, h, l, c) == (1.1, 1.1007, 1.0995, 1.1003)


def test_frames_are_length_prefixed_proto_messages():
    class FakeSocket:
        def __init__(self):
            self.sent = b""

        def sendall(self, data):
            self.sent += data

    s = oc.Session.__new__(oc.Session)
    s.sock = FakeSocket()
    s.next_id = 0
    cid = s.send(oc.oa.ProtoOAVersionReq())
    (length,) = struct.unpack(">I", s.sock.sent[:4])
    assert length == len(s.sock.sent) - 4
    env = oc.common.ProtoMessage()
    env.ParseFromString(s.sock.sent[4:])
    assert (env.payloadType, env.clientMsgId) == (2104, cid)
