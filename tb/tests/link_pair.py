"""cocotb tests of two link adapters over a channel with bit errors (LinkPair).

Scoreboard: per end and VC, an :class:`InOrderScoreboard` — every flit out exactly once, in
order, bit-exact. A monitor on the A→B beats decodes every frame with the reference model
(:mod:`chipknit.tb.models.link`) and checks its CRC and fields, so the frame format on the
wire is the documented one.
"""

import random

import cocotb
from cocotb.triggers import ClockCycles, RisingEdge

from chipknit.tb.dut import design_params, reset, start_clock
from chipknit.tb.models.credit import InOrderScoreboard
from chipknit.tb.models.link import FrameFormat
from chipknit.tb.stream import StreamMonitor, StreamSink, StreamSource, random_pauses

TIMEOUT_MS = 20


class LinkPairBench:
    def __init__(self, dut, *, source_pause=0.3, sink_pause=0.3):
        self.dut = dut
        self.params = design_params()
        self.format = FrameFormat(**{k: self.params[k] for k in (
            "flit_width", "vcs", "beat_width", "frame_flits", "seq_bits", "rx_credits")})
        self.mask = (1 << self.params["flit_width"]) - 1
        dut.error_threshold.value = 0
        dut.tx_ready.value = 1
        start_clock(dut)
        self.sources, self.sinks, self.boards = {}, {}, {}
        for src, dst in (("a", "b"), ("b", "a")):
            for vc in range(self.params["vcs"]):
                board = InOrderScoreboard(f"{src}→{dst} vc{vc}")
                self.boards[src, vc] = board
                self.sources[src, vc] = StreamSource(dut, f"{src}_i__{vc}", dut.clk,
                                                     random_pauses(source_pause))
                StreamMonitor(dut, f"{src}_i__{vc}", dut.clk, callback=board.expect)
                self.sinks[dst, vc] = StreamSink(dut, f"{dst}_o__{vc}", dut.clk,
                                                 random_pauses(sink_pause),
                                                 callback=board.observe)

    def send_random(self, count_per_stream):
        for (src, vc), source in self.sources.items():
            for n in range(count_per_stream):
                # Tag each flit with its stream and number in the low bits, randomise the rest.
                tag = (n << 3) | (vc << 1) | (src == "b")
                source.send_nowait((random.getrandbits(64) << 24 | tag) & self.mask)

    async def drain(self, limit_cycles=50_000):
        for _ in range(limit_cycles // 100):
            if all(source.idle() for source in self.sources.values()) and \
                    all(not board.expected for board in self.boards.values()):
                break
            await ClockCycles(self.dut.clk, 100)
        else:
            raise AssertionError(f"link did not drain in {limit_cycles} cycles: "
                                 f"{self.snapshot()}")
        for board in self.boards.values():
            board.drain_check()

    def snapshot(self) -> dict:
        """Every counter of both ends, for failure messages."""
        values = {}
        for end in ("a", "b"):
            for half in ("tx", "rx"):
                prefix = f"{end}_{half}_status__"
                for name in dir(self.dut):
                    if name.startswith(prefix):
                        values[name] = int(getattr(self.dut, name).value)
        values["pending"] = {f"{src}{vc}": len(board.expected)
                             for (src, vc), board in self.boards.items()}
        return values

    def counter(self, name):
        return int(getattr(self.dut, name).value)


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def error_free_random_traffic(dut):
    """Both directions, all VCs, random pauses on every stream: exact delivery, no replays."""
    bench = LinkPairBench(dut)
    await reset(dut)
    bench.send_random(100)
    await bench.drain()
    for end in ("a", "b"):
        assert bench.counter(f"{end}_rx_status__crc_errors") == 0
        assert bench.counter(f"{end}_tx_status__replayed_frames") == 0
        assert bench.counter(f"{end}_rx_status__flits") == 100 * bench.params["vcs"]


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def frames_on_the_wire_match_the_format(dut):
    """Every A→B frame decodes with the reference model and its CRC checks."""
    bench = LinkPairBench(dut, source_pause=0.0, sink_pause=0.0)
    fmt = bench.format
    frames, beats = [], []

    async def capture():
        while True:
            await RisingEdge(dut.clk)
            if int(dut.rst.value):
                beats.clear()
            # The channel's first stage: what A sent, before any error.
            elif int(dut.a_beat_sent.value):
                beats.append(int(dut.a_beat.value))
                if len(beats) == fmt.frame_beats:
                    frames.append(fmt.decode(beats))
                    beats.clear()

    cocotb.start_soon(capture())
    await reset(dut)
    bench.send_random(200)
    await bench.drain()
    assert frames and all(frame.crc_ok for frame in frames), "a frame failed the model's CRC"
    assert all(frame.header_ok for frame in frames), "a header failed the model's header CRC"
    assert all(frame.data == (frame.count != 0) for frame in frames), "data bit != count > 0"
    # Every header carries B's cumulative ACK (error-free: never a NAK), idle frames' too.
    assert not any(frame.nak for frame in frames)
    acks = [frame.ack for frame in frames]
    assert len(set(acks)) > 1, "the ACK in A's headers never moved"
    data = [frame for frame in frames if frame.count]
    assert [frame.seq for frame in data] == [n % (1 << fmt.seq_bits) for n in range(len(data))]
    assert sum(frame.count for frame in data) == 200 * fmt.vcs
    full = [frame for frame in data if frame.count == fmt.frame_flits]
    assert full, "saturating traffic never filled a frame"


async def _traffic_under_errors(dut, ber, count):
    bench = LinkPairBench(dut)
    await reset(dut)
    # One bit flipped per hit beat: P(hit) = BER × beat width.
    dut.error_threshold.value = min(int(ber * bench.params["beat_width"] * 2**32), 2**32 - 1)
    bench.send_random(count)
    await bench.drain(limit_cycles=400_000)
    snapshot = bench.snapshot()
    for end in ("a", "b"):
        assert snapshot[f"{end}_rx_status__flits"] == count * bench.params["vcs"], snapshot
        assert snapshot[f"{end}_rx_status__protocol_errors"] == 0, snapshot
    return bench, snapshot


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def bit_errors_1e4_are_replayed_exactly_once(dut):
    """BER 1e-4 both ways: CRC catches every error, replays deliver each flit exactly once."""
    bench, snapshot = await _traffic_under_errors(dut, 1e-4, 400)
    injected = int(dut.a_errors.value) + int(dut.b_errors.value)
    crc_errors = snapshot["a_rx_status__crc_errors"] + snapshot["b_rx_status__crc_errors"]
    assert injected > 0 and crc_errors > 0, snapshot
    assert crc_errors <= injected, "more CRC errors than injected bit errors"
    replays = snapshot["a_tx_status__replayed_frames"] + snapshot["b_tx_status__replayed_frames"]
    assert replays > 0, snapshot
    # Replays are asked for by NAKs, repeated in every header until the frame arrives: the
    # replay timer is the exception, not the rule.
    naks = snapshot["a_tx_status__naks"] + snapshot["b_tx_status__naks"]
    timeouts = snapshot["a_tx_status__timeouts"] + snapshot["b_tx_status__timeouts"]
    assert naks > 0 and timeouts <= naks // 4, snapshot


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def bit_errors_1e3_still_exact(dut):
    """BER 1e-3 (most frames hit): slow, but still exactly once and in order."""
    await _traffic_under_errors(dut, 1e-3, 60)


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def half_rate_lanes(dut):
    """Lanes ready every other cycle (a degraded, half-width lane layer): still exact."""
    bench = LinkPairBench(dut)
    await reset(dut)

    async def toggle():
        while True:
            dut.tx_ready.value = 0
            await RisingEdge(dut.clk)
            dut.tx_ready.value = 1
            await RisingEdge(dut.clk)

    cocotb.start_soon(toggle())
    bench.send_random(100)
    await bench.drain()


def _write_result(figures):
    import json
    import os
    if os.environ.get("CHIPKNIT_RESULT_FILE"):
        with open(os.environ["CHIPKNIT_RESULT_FILE"], "w") as file:
            json.dump(figures, file)


def _stats(values):
    return {"min": min(values), "mean": round(sum(values) / len(values), 3), "max": max(values)}


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def zero_load_latency(dut):
    """Single flits on an idle link, A→B, VC 0: latency and where it goes.

    Cycles are counted as a register would count them (a wire is 0): from the first clock edge
    at which the flit is ``valid`` on A's ``i`` to the edge at which it leaves B's ``o``, minus
    the lane flight (the channel's ``latency`` register stages). Per flit:

    - ``wait``: edges from offering to being taken, which happens in the cycle a data frame
      starts (its first beat goes out then; decided the cycle before): the wait for the
      current frame to end;
    - ``serialisation``: ``frame_beats - 1`` edges from the first beat to the CRC beat;
    - ``rx_check``: edges from the CRC beat arriving at B to the flit leaving ``o``.

    ``latency = wait + serialisation + rx_check``; ``adapter_pipeline = latency -
    frame_beats``. Writes the figures to ``CHIPKNIT_RESULT_FILE`` when set.
    """
    bench = LinkPairBench(dut, source_pause=0.0, sink_pause=0.0)
    params, fmt = bench.params, bench.format
    edge = {"cycle": 0}
    offered, taken, records = {}, {}, []

    async def count_edges():
        # One coroutine samples both ends at each edge, so the edges counted are consistent.
        while True:
            await RisingEdge(dut.clk)
            edge["cycle"] += 1
            if int(dut.a_i__0__valid.value):
                offered.setdefault(int(dut.a_i__0__payload.value), edge["cycle"])
                if int(dut.a_i__0__ready.value):
                    taken[int(dut.a_i__0__payload.value)] = edge["cycle"]
            if int(dut.b_o__0__valid.value) and int(dut.b_o__0__ready.value):
                flit, out = int(dut.b_o__0__payload.value), edge["cycle"]
                records.append({"wait": taken[flit] - offered[flit],
                                "serialisation": fmt.frame_beats - 1,
                                "rx_check": out - (taken[flit] + fmt.frame_beats - 1)
                                - params["latency"],
                                "latency": out - offered[flit] - params["latency"]})

    cocotb.start_soon(count_edges())
    await reset(dut)
    for n in range(40):
        # Zero load: the previous flit is delivered and acknowledged (the ACK needs up to
        # three frames to come back), so neither credits nor the replay window hold this one;
        # a random phase against the frame boundary.
        while len(records) < n:
            await RisingEdge(dut.clk)
        await ClockCycles(dut.clk, 4 * fmt.frame_beats + random.randrange(fmt.frame_beats))
        bench.sources["a", 0].send_nowait(n)
    await bench.drain()
    assert len(records) == 40
    figures = {name: _stats([r[name] for r in records])
               for name in ("latency", "wait", "serialisation", "rx_check")}
    figures["adapter_pipeline"] = _stats([r["latency"] - fmt.frame_beats for r in records])
    figures["frame_beats"] = fmt.frame_beats
    dut._log.info("zero-load latency (cycles, lanes excluded): %s", figures)
    _write_result(figures)
    # The flit goes out with the first frame to start after the cycle it was offered in (the
    # transmitter decides a new frame a cycle ahead, at the previous frame's CRC beat); the
    # registered CRC compare (``late_check``) and the receiver's output registers
    # (``output_skid``) take three cycles after the CRC beat (one cycle less without either);
    # nothing else is added.
    check = 1 + fmt.late_check + int(params.get("output_skid", True))
    for r in records:
        assert r["rx_check"] == check, r
        assert 1 <= r["wait"] <= fmt.frame_beats, r
        assert r["latency"] == r["wait"] + fmt.frame_beats + check - 1, r


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def saturated_efficiency(dut):
    """Both directions saturated on every VC, no pauses: flit bits per lane bit, A→B.

    Writes ``{"payload_efficiency", "flits", "cycles"}`` to ``CHIPKNIT_RESULT_FILE`` when set.
    """
    bench = LinkPairBench(dut, source_pause=0.0, sink_pause=0.0)
    params = bench.params
    await reset(dut)
    # Whole frames in the window: the receiver counts flits a frame at a time.
    window = bench.format.frame_beats * max(8, 2000 // bench.format.frame_beats)
    bench.send_random(window // 2)
    warmup = 500
    await ClockCycles(dut.clk, warmup)
    start = bench.counter("b_rx_status__flits")
    await ClockCycles(dut.clk, window)
    flits = bench.counter("b_rx_status__flits") - start
    assert all(not source.idle() for source in bench.sources.values()), \
        "a source ran dry inside the window: not saturated"
    efficiency = flits * params["flit_width"] / (window * params["beat_width"])
    figures = {"payload_efficiency": round(efficiency, 4), "flits": flits, "cycles": window,
               "format_efficiency": round(bench.format.payload_efficiency, 4)}
    dut._log.info("saturated: %s", figures)
    _write_result(figures)
    await bench.drain(limit_cycles=100_000)
    assert efficiency <= bench.format.payload_efficiency + 0.01, figures
