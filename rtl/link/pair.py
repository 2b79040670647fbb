"""Two link adapters joined by a wire with latency and bit-error injection.

The simulation and benchmark top for the link protocol: ends ``a`` and ``b``, each with its
flit streams outside, their beats crossing a channel of ``latency`` register stages each way.
Each direction flips one bit of a beat where a seeded 32-bit LFSR falls below
``error_threshold`` (so a beat is hit with probability ``threshold / 2**32`` and the bit error
rate is that divided by the beat width); a second LFSR picks the bit. Both LFSRs advance 32
steps per cycle, so every beat is compared with a fresh 32-bit word: hits are independent
from beat to beat. (Stepping once per cycle, as an earlier version did, makes a small value
follow a small value, since a Galois step mostly halves the state: hits came in bursts,
several per frame, and the link's goodput under errors looked better than the go-back-N
bound allows.)
"""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..credit import SaturatingCounter
from .adapter import LinkAdapter
from .frame import LinkParams
from .receiver import ReceiverStatus
from .transmitter import TransmitterStatus

__all__ = ["LinkPair"]


def _lfsr32_next(state):
    # Galois LFSR, x^32 + x^22 + x^2 + x + 1 (maximal length).
    feedback = state[0]
    shifted = Cat(state[1:], 0)
    return shifted ^ (feedback.replicate(32) & 0x80200003)


def _lfsr32_word(state):
    """The state 32 steps on: a fresh word every cycle.

    Each step is linear over GF(2), so the 32 steps are worked out here, in Python, as one
    XOR of state bits per output bit (unrolling the steps as expressions would repeat the
    earlier steps inside every later one).
    """
    bits = [1 << i for i in range(32)]      # bit i of the state, as a mask of input bits
    for _ in range(32):
        feedback = bits[0]
        bits = bits[1:] + [0]
        bits = [b ^ feedback if 0x80200003 >> i & 1 else b for i, b in enumerate(bits)]
    terms = []
    for mask in bits:
        term = 0
        for i in range(32):
            if mask >> i & 1:
                term = term ^ state[i]
        terms.append(term)
    return Cat(*terms)


class LinkPair(wiring.Component):
    """Adapters ``a`` and ``b`` and the channel between them.

    Members
    -------
    a_i, b_i : In(stream.Signature(flit_width)).array(vcs)
        Flits into each end.
    a_o, b_o : Out(stream.Signature(flit_width)).array(vcs)
        Flits out of each end.
    error_threshold : In(32)
        Per beat and direction, the chance of one flipped bit is ``error_threshold / 2**32``.
    tx_ready : In(1)
        Lanes ready for a beat (low to model a slower or degraded lane layer).
    a_tx_status, a_rx_status, b_tx_status, b_rx_status : Out
        The adapters' counters.
    a_errors, b_errors : Out(32)
        Bit errors injected into the beats each end received.
    a_beat, a_beat_sent : Out(beat_width), Out(1)
        End ``a``'s beat and whether it goes out this cycle, before the channel's bit errors
        (for a monitor of the frame format).
    """

    def __init__(self, params: LinkParams = LinkParams(), latency: int = 2,
                 seeds: tuple[int, int] = (0x1234567, 0x7654321)):
        if not isinstance(latency, int) or latency < 0:
            raise ValueError(f"Latency must be a non-negative integer, not {latency!r}")
        self.params, self.latency, self.seeds = params, latency, seeds
        p = params
        flits = stream.Signature(p.flit_width)
        super().__init__({
            "a_i": In(flits).array(p.vcs),
            "b_i": In(flits).array(p.vcs),
            "a_o": Out(flits).array(p.vcs),
            "b_o": Out(flits).array(p.vcs),
            "error_threshold": In(32),
            "tx_ready": In(1, init=1),
            "a_tx_status": Out(TransmitterStatus(p)),
            "a_rx_status": Out(ReceiverStatus(p)),
            "b_tx_status": Out(TransmitterStatus(p)),
            "b_rx_status": Out(ReceiverStatus(p)),
            "a_errors": Out(32),
            "b_errors": Out(32),
            "a_beat": Out(p.beat_width),
            "a_beat_sent": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.params
        m.submodules.a = a = LinkAdapter(p)
        m.submodules.b = b = LinkAdapter(p)
        for end, ports in ((a, (self.a_i, self.a_o)), (b, (self.b_i, self.b_o))):
            for vc in range(p.vcs):
                wiring.connect(m, wiring.flipped(ports[0][vc]), end.i[vc])
                wiring.connect(m, end.o[vc], wiring.flipped(ports[1][vc]))
        wiring.connect(m, a.tx_status, wiring.flipped(self.a_tx_status))
        wiring.connect(m, a.rx_status, wiring.flipped(self.a_rx_status))
        wiring.connect(m, b.tx_status, wiring.flipped(self.b_tx_status))
        wiring.connect(m, b.rx_status, wiring.flipped(self.b_rx_status))
        m.d.comb += [self.a_beat.eq(a.tx.payload), self.a_beat_sent.eq(a.tx.valid & a.tx.ready)]

        for name, src, dst, seed, errors_out in (("ab", a, b, self.seeds[0], self.b_errors),
                                                 ("ba", b, a, self.seeds[1], self.a_errors)):
            m.d.comb += src.tx.ready.eq(self.tx_ready)
            lfsr = Signal(32, init=seed, name=f"lfsr_{name}")
            where = Signal(32, init=seed ^ 0x5DEECE66, name=f"lfsr_{name}_position")
            m.d.sync += [lfsr.eq(_lfsr32_word(lfsr)), where.eq(_lfsr32_word(where))]
            hit = Signal(name=f"hit_{name}")
            m.d.comb += hit.eq(src.tx.valid & src.tx.ready & (lfsr < self.error_threshold))
            position = where[:16] % p.beat_width
            flip = Signal(p.beat_width, name=f"flip_{name}")
            m.d.comb += flip.eq(hit << position)
            counter = SaturatingCounter(32)
            m.submodules[f"errors_{name}"] = counter
            m.d.comb += [counter.inc.eq(hit), errors_out.eq(counter.count)]

            valid = src.tx.valid & src.tx.ready
            payload = src.tx.payload ^ flip
            for stage in range(self.latency):
                next_valid = Signal(name=f"wire_{name}_valid_{stage}")
                next_payload = Signal(p.beat_width, name=f"wire_{name}_payload_{stage}")
                m.d.sync += [next_valid.eq(valid), next_payload.eq(payload)]
                valid, payload = next_valid, next_payload
            m.d.comb += [dst.rx.valid.eq(valid), dst.rx.payload.eq(payload)]
        return m
