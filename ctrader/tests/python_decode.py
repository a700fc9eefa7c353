#!/usr/bin/env python3
"""Independent check of ctrader's wire format with Spotware's official generated message classes.

    python_decode.py decode FRAMES_FILE   # frames written by Rust -> one JSON line per message
    python_decode.py encode FRAMES_FILE   # frames built with the official classes, for Rust to decode
    python_decode.py names                # the official payloadType -> message name table, as JSON

Only `ctrader_open_api.messages.*_pb2` is used (the package's __init__ imports twisted, which the
project does not install, so the package module is registered without running it).
Run by ctrader/tests/client_interop.rs with $ORACLE_PYTHON (scripts/test.sh sets it up).
"""
import importlib.util
import json
import struct
import sys
import types


def load_official():
    spec = importlib.util.find_spec("ctrader_open_api")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("ctrader-open-api is not installed in this Python; run scripts/setup_venv.sh")
    pkg = types.ModuleType("ctrader_open_api")
    pkg.__path__ = list(spec.submodule_search_locations)
    sys.modules["ctrader_open_api"] = pkg
    from ctrader_open_api.messages import OpenApiCommonMessages_pb2 as common
    from ctrader_open_api.messages import OpenApiMessages_pb2 as oa
    from ctrader_open_api.messages import OpenApiModelMessages_pb2 as model
    return common, oa, model


common, oa, model = load_official()
from google.protobuf.json_format import MessageToDict  # noqa: E402

# payloadType -> class, from each message's own payloadType default (the official table).
BY_TYPE = {}
for mod in (common, oa):
    for name in dir(mod):
        cls = getattr(mod, name)
        desc = getattr(cls, "DESCRIPTOR", None)
        if desc is None or not hasattr(desc, "fields_by_name") or name == "ProtoMessage":
            continue
        if "payloadType" in desc.fields_by_name:
            BY_TYPE[cls().payloadType] = cls


def frames(data):
    i = 0
    while i < len(data):
        if i + 4 > len(data):
            sys.exit(f"truncated length prefix at byte {i}")
        (n,) = struct.unpack(">I", data[i:i + 4])
        if i + 4 + n > len(data):
            sys.exit(f"truncated frame at byte {i}: need {n} bytes")
        yield data[i + 4:i + 4 + n]
        i += 4 + n


def decode(path):
    with open(path, "rb") as f:
        data = f.read()
    for raw in frames(data):
        env = common.ProtoMessage()
        env.ParseFromString(raw)
        out = {"payloadType": env.payloadType}
        if env.HasField("clientMsgId"):
            out["clientMsgId"] = env.clientMsgId
        cls = BY_TYPE.get(env.payloadType)
        if cls is None:
            out["name"] = None
        else:
            msg = cls()
            msg.ParseFromString(env.payload)
            out["name"] = cls.DESCRIPTOR.name
            out["missing_required"] = msg.FindInitializationErrors()
            out["fields"] = MessageToDict(msg, preserving_proto_field_name=True, use_integers_for_enums=True)
        print(json.dumps(out, sort_keys=True))


def frame(msg, client_msg_id=None, payload_type=None):
    env = common.ProtoMessage()
    env.payloadType = payload_type if payload_type is not None else msg.payloadType
    env.payload = msg.SerializeToString()
    if client_msg_id is not None:
        env.clientMsgId = client_msg_id
    raw = env.SerializeToString()
    return struct.pack(">I", len(raw)) + raw


def trade_data(symbol_id, volume, side, label):
    return model.ProtoOATradeData(symbolId=symbol_id, volume=volume, tradeSide=side, label=label,
                                  openTimestamp=1_770_000_000_000)


def encode(path):
    out = []
    out.append(frame(common.ProtoHeartbeatEvent()))
    out.append(frame(oa.ProtoOAApplicationAuthRes(), client_msg_id="r1"))
    spot = oa.ProtoOASpotEvent(ctidTraderAccountId=42, symbolId=1, bid=108542, ask=108550, timestamp=1_770_000_123_456)
    spot.trendbar.append(model.ProtoOATrendbar(volume=1234, period=model.M15, low=108480, deltaOpen=20,
                                               deltaClose=62, deltaHigh=80, utcTimestampInMinutes=29_500_000))
    out.append(frame(spot))
    ev = oa.ProtoOAExecutionEvent(ctidTraderAccountId=42, executionType=model.ORDER_FILLED)
    ev.position.CopyFrom(model.ProtoOAPosition(
        positionId=777, tradeData=trade_data(1, 150000, model.SELL, "EURUSD|M15"),
        positionStatus=model.POSITION_STATUS_OPEN, swap=0, price=1.08542))
    ev.order.CopyFrom(model.ProtoOAOrder(
        orderId=555, tradeData=trade_data(1, 150000, model.SELL, "EURUSD|M15"), orderType=model.MARKET,
        orderStatus=model.ORDER_STATUS_FILLED, executionPrice=1.08542, clientOrderId="cid-9"))
    ev.deal.CopyFrom(model.ProtoOADeal(
        dealId=999, orderId=555, positionId=777, volume=150000, filledVolume=150000, symbolId=1,
        createTimestamp=1_770_000_000_000, executionTimestamp=1_770_000_000_005, tradeSide=model.SELL,
        dealStatus=model.FILLED, executionPrice=1.08542))
    out.append(frame(ev, client_msg_id="r7"))
    sym = oa.ProtoOASymbolByIdRes(ctidTraderAccountId=42)
    sym.symbol.append(model.ProtoOASymbol(symbolId=1, digits=5, pipPosition=4, lotSize=10_000_000,
                                          stepVolume=100_000, minVolume=100_000, maxVolume=1_000_000_000))
    out.append(frame(sym, client_msg_id="r2"))
    out.append(frame(oa.ProtoOAErrorRes(ctidTraderAccountId=42, errorCode="CH_ACCESS_TOKEN_INVALID",
                                        description="bad token", maintenanceEndTimestamp=1_770_003_600)))
    out.append(frame(oa.ProtoOAOrderErrorEvent(ctidTraderAccountId=42, errorCode="NOT_ENOUGH_MONEY",
                                               positionId=777, description="margin"), client_msg_id="r8"))
    # A depth event: a payload type the Rust side does not model and must keep as Unknown.
    depth = oa.ProtoOADepthEvent(ctidTraderAccountId=42, symbolId=1)
    out.append(frame(depth))
    with open(path, "wb") as f:
        f.write(b"".join(out))
    print(len(out))


if __name__ == "__main__":
    if sys.argv[1:] == ["names"]:
        print(json.dumps({str(k): v.DESCRIPTOR.name for k, v in BY_TYPE.items()}, sort_keys=True))
        sys.exit(0)
    if len(sys.argv) != 3 or sys.argv[1] not in ("decode", "encode"):
        sys.exit(__doc__)
    (decode if sys.argv[1] == "decode" else encode)(sys.argv[2])
