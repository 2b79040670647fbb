"""Link adapter: one end of a die-to-die link (transmitter + receiver).

The two halves meet here: the receiver tells the transmitter what to acknowledge and which
credits to return, and passes on what the peer acknowledged and returned.
"""

from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .frame import LinkParams
from .receiver import LinkReceiver, ReceiverStatus
from .transmitter import LinkTransmitter, TransmitterStatus

__all__ = ["LinkAdapter"]


class LinkAdapter(wiring.Component):
    """One end of a link.

    Members
    -------
    i : In(stream.Signature(flit_width)).array(vcs)
        Flits to send, per VC.
    o : Out(stream.Signature(flit_width)).array(vcs)
        Flits received, per VC, exactly once and in order.
    tx : Out(stream.Signature(beat_width))
        Beats to the lanes.
    rx : In(stream.Signature(beat_width))
        Beats from the lanes (always accepted).
    tx_status, rx_status : Out
        Counters and credits (see the transmitter and receiver).
    """

    def __init__(self, params: LinkParams = LinkParams()):
        self.params = params
        p = params
        super().__init__({
            "i": In(stream.Signature(p.flit_width)).array(p.vcs),
            "o": Out(stream.Signature(p.flit_width)).array(p.vcs),
            "tx": Out(stream.Signature(p.beat_width)),
            "rx": In(stream.Signature(p.beat_width)),
            "tx_status": Out(TransmitterStatus(p)),
            "rx_status": Out(ReceiverStatus(p)),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.transmitter = tx = LinkTransmitter(self.params)
        m.submodules.receiver = rx = LinkReceiver(self.params)
        for vc in range(self.params.vcs):
            wiring.connect(m, wiring.flipped(self.i[vc]), tx.i[vc])
            wiring.connect(m, rx.o[vc], wiring.flipped(self.o[vc]))
        wiring.connect(m, tx.beats, wiring.flipped(self.tx))
        wiring.connect(m, wiring.flipped(self.rx), rx.beats)
        wiring.connect(m, tx.status, wiring.flipped(self.tx_status))
        wiring.connect(m, rx.status, wiring.flipped(self.rx_status))
        m.d.comb += [
            tx.send_ack.eq(rx.ack),
            tx.send_nak.eq(rx.nak),
            tx.send_credits.eq(rx.credit_totals),
            tx.peer_header_valid.eq(rx.peer_header_valid),
            tx.peer_valid.eq(rx.peer_valid),
            tx.peer_ack.eq(rx.peer_ack),
            tx.peer_nak.eq(rx.peer_nak),
            tx.peer_credits.eq(rx.peer_credits),
        ]
        return m
