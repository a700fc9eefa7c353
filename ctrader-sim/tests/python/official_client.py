"""Drives ctrader-sim with Spotware's official Open API message classes — the independent check that
the simulator speaks the real protocol.

Only `ctrader_open_api.messages.*_pb2` (installed with --no-deps), `ssl` and `socket` talk to the
server; nothing here shares code with the Rust side. Run by `ctrader-sim/tests/sim_interop.rs`:

    python official_client.py --port P --cafile sim.pem --data ctrader-sim/tests/data \
        --client-id ID --client-secret S --access-token T --account-id N

Exits non-zero with a message on the first mismatch; prints one `OK ...` line per checked step.
"""

from __future__ import annotations

import argparse
import importlib.util
import socket
import ssl
import struct
import sys
import time
import types
from pathlib import Path


def load_messages():
    # The package's __init__ imports Twisted (its client); we need only the generated messages, so
    # register an empty package shell and import the message modules from its directory.
    spec = importlib.util.find_spec("ctrader_open_api")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("ctrader-open-api is not installed: run scripts/setup_venv.sh (it installs it with --no-deps)")
    if "ctrader_open_api" not in sys.modules:
        shell = types.ModuleType("ctrader_open_api")
        shell.__path__ = list(spec.submodule_search_locations)
        sys.modules["ctrader_open_api"] = shell
    from ctrader_open_api.messages import OpenApiCommonMessages_pb2 as common
    from ctrader_open_api.messages import OpenApiMessages_pb2 as oa
    from ctrader_open_api.messages import OpenApiModelMessages_pb2 as model

    return common, oa, model


common, oa, model = load_messages()

# payloadType -> message class, from each message's own payloadType default.
CLASSES = {}
for module in (common, oa):
    for name in module.DESCRIPTOR.message_types_by_name:
        cls = getattr(module, name)
        field = cls.DESCRIPTOR.fields_by_name.get("payloadType")
        if field is not None and field.has_default_value:
            CLASSES[field.default_value] = cls


class Mismatch(Exception):
    pass


def check(cond: bool, what: str) -> None:
    if not cond:
        raise Mismatch(what)


class Session:
    def __init__(self, host: str, port: int, cafile: str):
        ctx = ssl.create_default_context(cafile=cafile)
        raw = socket.create_connection((host, port), timeout=10)
        self.sock = ctx.wrap_socket(raw, server_hostname="localhost")
        self.next_id = 0
        self.backlog: list[tuple[object, str]] = []

    def close(self) -> None:
        self.sock.close()

    def send(self, msg, client_msg_id: str | None = None) -> str:
        if client_msg_id is None:
            self.next_id += 1
            client_msg_id = f"py-{self.next_id}"
        env = common.ProtoMessage()
        env.payloadType = msg.DESCRIPTOR.fields_by_name["payloadType"].default_value
        env.payload = msg.SerializeToString()
        env.clientMsgId = client_msg_id
        data = env.SerializeToString()
        self.sock.sendall(struct.pack(">I", len(data)) + data)
        return client_msg_id

    def _read_exact(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise Mismatch("server closed the connection")
            buf += chunk
        return buf

    def read(self):
        (length,) = struct.unpack(">I", self._read_exact(4))
        env = common.ProtoMessage()
        env.ParseFromString(self._read_exact(length))
        cls = CLASSES.get(env.payloadType)
        check(cls is not None, f"unknown payloadType {env.payloadType}")
        msg = cls()
        msg.ParseFromString(env.payload)
        # Every field the official definitions mark `required` must be present.
        check(msg.IsInitialized(), f"{cls.__name__} misses required fields: {msg.FindInitializationErrors()}")
        return msg, env.clientMsgId if env.HasField("clientMsgId") else ""

    def request(self, msg, count: int = 1, timeout: float = 10.0) -> list:
        """Sends msg and returns the `count` messages carrying its clientMsgId, in arrival order."""
        cid = self.send(msg)
        got = []
        deadline = time.monotonic() + timeout
        while len(got) < count:
            check(time.monotonic() < deadline, f"no answer to {type(msg).__name__} within {timeout}s")
            m, mid = self.read()
            if mid == cid:
                got.append(m)
            else:
                self.backlog.append((m, mid))
        return got

    def wait_for(self, pred, what: str, timeout: float = 15.0):
        for i, (m, _) in enumerate(self.backlog):
            if pred(m):
                del self.backlog[i]
                return m
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m, mid = self.read()
            if pred(m):
                return m
            self.backlog.append((m, mid))
        raise Mismatch(f"timed out waiting for {what}")


def is_type(name: str):
    return lambda m: type(m).__name__ == name


def expect_error(msgs, cls_name: str, code: str, what: str):
    check(len(msgs) == 1, f"{what}: expected one answer")
    m = msgs[0]
    check(type(m).__name__ == cls_name, f"{what}: expected {cls_name}, got {type(m).__name__}")
    check(m.errorCode == code, f"{what}: expected errorCode {code}, got {m.errorCode}")
    print(f"OK {what}: {cls_name} {code} ({m.description})")


def decode_bar(tb) -> tuple[int, float, float, float, float]:
    low = tb.low
    return (
        tb.utcTimestampInMinutes * 60,
        (low + tb.deltaOpen) / 1e5,
        (low + tb.deltaHigh) / 1e5,
        low / 1e5,
        (low + tb.deltaClose) / 1e5,
    )


def load_csv(path: Path) -> dict[int, tuple[float, float, float, float]]:
    from datetime import datetime

    rows = {}
    for line in path.read_text().splitlines()[1:]:
        t, o, h, l, c, _v = line.split(",")
        ts = int(datetime.strptime(t, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=__import__("datetime").timezone.utc).timestamp())
        rows[ts] = (float(o), float(h), float(l), float(c))
    return rows


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--cafile", required=True)
    ap.add_argument("--data", required=True, help="the bars directory the simulator replays")
    ap.add_argument("--client-id", required=True)
    ap.add_argument("--client-secret", required=True)
    ap.add_argument("--access-token", required=True)
    ap.add_argument("--account-id", type=int, required=True)
    ap.add_argument("--symbol", default="EURUSD")
    a = ap.parse_args()

    s = Session(a.host, a.port, a.cafile)
    acct = a.account_id

    # Application auth: the wrong secret first, then the right one.
    expect_error(
        s.request(oa.ProtoOAApplicationAuthReq(clientId=a.client_id, clientSecret=a.client_secret + "x")),
        "ProtoOAErrorRes", "CH_CLIENT_AUTH_FAILURE", "app auth with a wrong secret",
    )
    (res,) = s.request(oa.ProtoOAApplicationAuthReq(clientId=a.client_id, clientSecret=a.client_secret))
    check(type(res).__name__ == "ProtoOAApplicationAuthRes", f"app auth: got {type(res).__name__}")
    print("OK app auth")

    (res,) = s.request(oa.ProtoOAVersionReq())
    check(type(res).__name__ == "ProtoOAVersionRes" and res.version, "version")
    print(f"OK version {res.version}")

    expect_error(
        s.request(oa.ProtoOAGetAccountListByAccessTokenReq(accessToken="nope")),
        "ProtoOAErrorRes", "CH_ACCESS_TOKEN_INVALID", "accounts with a wrong token",
    )
    (res,) = s.request(oa.ProtoOAGetAccountListByAccessTokenReq(accessToken=a.access_token))
    ids = [x.ctidTraderAccountId for x in res.ctidTraderAccount]
    check(ids == [acct], f"accounts by token: {ids}")
    print(f"OK accounts by token {ids}")

    expect_error(
        s.request(oa.ProtoOATraderReq(ctidTraderAccountId=acct)),
        "ProtoOAErrorRes", "ACCOUNT_NOT_AUTHORIZED", "trader before account auth",
    )
    expect_error(
        s.request(oa.ProtoOAAccountAuthReq(ctidTraderAccountId=acct, accessToken="nope")),
        "ProtoOAErrorRes", "CH_ACCESS_TOKEN_INVALID", "account auth with a wrong token",
    )
    (res,) = s.request(oa.ProtoOAAccountAuthReq(ctidTraderAccountId=acct, accessToken=a.access_token))
    check(type(res).__name__ == "ProtoOAAccountAuthRes" and res.ctidTraderAccountId == acct, "account auth")
    print("OK account auth")

    (res,) = s.request(oa.ProtoOASymbolsListReq(ctidTraderAccountId=acct))
    by_name = {x.symbolName: x.symbolId for x in res.symbol}
    check(a.symbol in by_name, f"symbols list lacks {a.symbol}: {sorted(by_name)}")
    sid = by_name[a.symbol]
    print(f"OK symbols list {sorted(by_name)}")

    (res,) = s.request(oa.ProtoOASymbolByIdReq(ctidTraderAccountId=acct, symbolId=[sid]))
    sym = res.symbol[0]
    if a.symbol == "EURUSD":
        check((sym.digits, sym.pipPosition, sym.lotSize) == (5, 4, 10_000_000), f"EURUSD spec {sym}")
    check(sym.minVolume > 0 and sym.stepVolume > 0 and sym.maxVolume > sym.minVolume, "volume limits")
    print(f"OK symbol by id: digits={sym.digits} pipPosition={sym.pipPosition} lotSize={sym.lotSize} "
          f"min={sym.minVolume} step={sym.stepVolume} max={sym.maxVolume}")

    (res,) = s.request(oa.ProtoOATraderReq(ctidTraderAccountId=acct))
    balance0 = res.trader.balance
    check(res.trader.moneyDigits == 2 and balance0 > 0 and res.trader.leverageInCents > 0, f"trader {res.trader}")
    print(f"OK trader balance={balance0} leverageInCents={res.trader.leverageInCents}")

    # Live data: spots then live trendbars (the real server needs the spot subscription first).
    expect_error(
        s.request(oa.ProtoOASubscribeLiveTrendbarReq(ctidTraderAccountId=acct, symbolId=sid, period=model.H1)),
        "ProtoOAErrorRes", "NOT_SUBSCRIBED_TO_SPOTS", "trendbars before spots",
    )
    (res,) = s.request(oa.ProtoOASubscribeSpotsReq(ctidTraderAccountId=acct, symbolId=[sid]))
    check(type(res).__name__ == "ProtoOASubscribeSpotsRes", f"subscribe spots: {type(res).__name__}")
    (res,) = s.request(oa.ProtoOASubscribeLiveTrendbarReq(ctidTraderAccountId=acct, symbolId=sid, period=model.H1))
    check(type(res).__name__ == "ProtoOASubscribeLiveTrendbarRes", f"subscribe trendbar: {type(res).__name__}")
    spot = s.wait_for(lambda m: is_type("ProtoOASpotEvent")(m) and m.symbolId == sid, "a spot event")
    check(spot.ask > spot.bid > 0, f"spot bid/ask {spot.bid}/{spot.ask}")
    print(f"OK spot bid={spot.bid / 1e5} ask={spot.ask / 1e5}")

    csv = load_csv(Path(a.data) / f"{a.symbol}.csv")
    # Wait for a bar to open: its trendbar's timestamp is new, and the previous one is now closed.
    first = s.wait_for(lambda m: is_type("ProtoOASpotEvent")(m) and m.symbolId == sid and len(m.trendbar) == 1, "a live trendbar")
    t0 = first.trendbar[0].utcTimestampInMinutes
    opened = s.wait_for(
        lambda m: is_type("ProtoOASpotEvent")(m) and m.symbolId == sid and len(m.trendbar) == 1
        and m.trendbar[0].utcTimestampInMinutes > t0,
        "a new bar",
    )
    forming = opened.trendbar[0].utcTimestampInMinutes * 60
    check(forming in csv, f"live bar time {forming} is not in {a.symbol}.csv")
    check(abs(opened.bid / 1e5 - csv[forming][0]) < 1e-9, f"opening bid {opened.bid} != bar open {csv[forming][0]}")
    # A live trendbar carries no close (the forming bar's last price is the bid), as the real server's.
    check(not any(m.trendbar[0].HasField("deltaClose") for m in (first, opened)), "a live trendbar carried deltaClose")
    print(f"OK live trendbar: new bar at {forming}, bid = its open {csv[forming][0]}")

    # History: only closed bars, exactly the file's values, none at or after the forming bar.
    # One request may span at most 21168000000 ms for H1 (Spotware's documented limit per period).
    h1_max_ms = 21_168_000_000
    now_ms = int(time.time() * 1000) + 10 * 365 * 86400 * 1000
    expect_error(
        s.request(oa.ProtoOAGetTrendbarsReq(
            ctidTraderAccountId=acct, symbolId=sid, period=model.H1, fromTimestamp=0, toTimestamp=now_ms)),
        "ProtoOAErrorRes", "INCORRECT_BOUNDARIES", "a trendbar window past the maximum",
    )
    to_ms = (forming + 3600) * 1000
    (res,) = s.request(oa.ProtoOAGetTrendbarsReq(
        ctidTraderAccountId=acct, symbolId=sid, period=model.H1, fromTimestamp=to_ms - h1_max_ms, toTimestamp=to_ms))
    bars = [decode_bar(tb) for tb in res.trendbar]
    check(len(bars) >= 2, f"history has {len(bars)} bars")
    check(all(t < forming for t, *_ in bars), "history contains the forming bar or the future")
    for t, o, h, l, c in bars:
        want = csv.get(t)
        check(want is not None, f"history bar {t} not in the file")
        check(all(abs(x - y) < 1e-9 for x, y in zip((o, h, l, c), want)), f"bar {t}: {(o, h, l, c)} != {want}")
    print(f"OK get trendbars: {len(bars)} closed bars, last {bars[-1][0]} < forming {forming}, values match the file")

    # A market order: ORDER_ACCEPTED then ORDER_FILLED, both with our clientMsgId.
    vol = sym.minVolume
    accepted, filled = s.request(oa.ProtoOANewOrderReq(
        ctidTraderAccountId=acct, symbolId=sid, orderType=model.MARKET, tradeSide=model.BUY,
        volume=vol * 3, label="interop", clientOrderId="py-order-1"), count=2)
    check(type(accepted).__name__ == "ProtoOAExecutionEvent" and accepted.executionType == model.ORDER_ACCEPTED,
          f"first event {type(accepted).__name__} {getattr(accepted, 'executionType', None)}")
    check(type(filled).__name__ == "ProtoOAExecutionEvent" and filled.executionType == model.ORDER_FILLED,
          "second event must be ORDER_FILLED")
    check(filled.HasField("position") and filled.HasField("order") and filled.HasField("deal"), "fill has position/order/deal")
    pos = filled.position
    check(pos.positionStatus == model.POSITION_STATUS_OPEN and pos.tradeData.volume == vol * 3, f"position {pos}")
    check(pos.tradeData.label == "interop" and filled.order.clientOrderId == "py-order-1", "label / clientOrderId")
    price = filled.deal.executionPrice
    check(price > 0 and price == filled.order.executionPrice == pos.price, "deal, order and position prices agree")
    pid = pos.positionId
    print(f"OK market order: position {pid} filled at {filled.deal.executionPrice}")

    off_step = vol + sym.stepVolume // 2 if sym.stepVolume > 1 else 0
    expect_error(
        s.request(oa.ProtoOANewOrderReq(ctidTraderAccountId=acct, symbolId=sid, orderType=model.MARKET,
                                        tradeSide=model.SELL, volume=off_step)),
        "ProtoOAOrderErrorEvent", "TRADING_BAD_VOLUME", "order with a bad volume",
    )
    expect_error(
        s.request(oa.ProtoOANewOrderReq(ctidTraderAccountId=acct, symbolId=sid, orderType=model.MARKET,
                                        tradeSide=model.SELL, volume=sym.maxVolume)),
        "ProtoOAOrderErrorEvent", "NOT_ENOUGH_MONEY", "order beyond the margin",
    )

    (res,) = s.request(oa.ProtoOAReconcileReq(ctidTraderAccountId=acct))
    mine = [p for p in res.position if p.positionId == pid]
    check(len(mine) == 1 and mine[0].tradeData.label == "interop", f"reconcile: {res}")
    print(f"OK reconcile: {len(res.position)} open position(s), ours with its label")

    # Partial close, then the rest.
    _, part = s.request(oa.ProtoOAClosePositionReq(ctidTraderAccountId=acct, positionId=pid, volume=vol), count=2)
    check(part.executionType == model.ORDER_FILLED and part.position.tradeData.volume == vol * 2, "partial close")
    check(part.deal.HasField("closePositionDetail") and part.deal.closePositionDetail.closedVolume == vol, "close detail")
    _, full = s.request(oa.ProtoOAClosePositionReq(ctidTraderAccountId=acct, positionId=pid, volume=vol * 2), count=2)
    check(full.position.positionStatus == model.POSITION_STATUS_CLOSED, "full close")
    print(f"OK close: partial then full, balance now {full.deal.closePositionDetail.balance}")
    expect_error(
        s.request(oa.ProtoOAClosePositionReq(ctidTraderAccountId=acct, positionId=pid, volume=vol)),
        "ProtoOAOrderErrorEvent", "POSITION_NOT_FOUND", "closing a closed position",
    )

    (res,) = s.request(oa.ProtoOADealListReq(ctidTraderAccountId=acct, fromTimestamp=0, toTimestamp=now_ms))
    check(len([d for d in res.deal if d.positionId == pid]) == 3 and not res.hasMore, f"deal list: {len(res.deal)} deals")
    (res,) = s.request(oa.ProtoOAOrderListReq(ctidTraderAccountId=acct, fromTimestamp=0, toTimestamp=now_ms))
    check(len([o for o in res.order if o.positionId == pid]) == 3, f"order list: {len(res.order)} orders")
    print("OK deal list and order list: 3 deals and 3 orders for the position")

    (res,) = s.request(oa.ProtoOATraderReq(ctidTraderAccountId=acct))
    check(res.trader.balance == full.deal.closePositionDetail.balance, "trader balance after the close")
    print(f"OK balance {balance0} -> {res.trader.balance}")

    s.send(common.ProtoHeartbeatEvent())
    s.wait_for(is_type("ProtoHeartbeatEvent"), "a heartbeat back")
    print("OK heartbeat")
    s.close()
    print("ALL OK")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Mismatch as e:
        print(f"MISMATCH: {e}", file=sys.stderr)
        sys.exit(1)
