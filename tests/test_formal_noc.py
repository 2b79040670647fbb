# amaranth: UnusedElaboratable=no
"""Formal checks of the NoC (tb/properties_noc.py): the round-robin arbiter and the router's
switch allocator by k-induction (a matching, grants only to requesters, bounded service),
a whole small router's credit counters bounded from reset, and must-fail mutants of the
real code, one per property, so that no property is one that cannot fail."""

from dataclasses import replace

import pytest

from chipknit.rtl.noc import allocator, router
from chipknit.rtl.noc.route import MeshGeometry
from chipknit.rtl.noc.router import RouterParams
from chipknit.tb.formal import FormalCheck, check
from chipknit.tb.properties_link import mutant
from chipknit.tb.properties_noc import (
    SMALL_FLIT,
    AllocatorProperties,
    RoundRobinProperties,
    RouterCreditProperties,
)

YICES = "smtbmc yices"

#: The output connections of the router at (1, 1) of a 4x4 mesh (XY turns only):
#: ``Router.reach`` inverted, checked against the router below.
ROUTER_CONNECTIONS = ((1, 4), (0, 4), (0, 1, 3, 4), (0, 1, 2, 4), (0, 1, 2, 3, 4))


def router_allocator(bound=10, allocator_class=allocator.PreselectAllocator):
    # A VC waits at most vcs x (inputs of its output) cycles: its input offers each other
    # VC until it is served or no longer eligible, then this one until it is served.
    return AllocatorProperties(5, 2, 5, ROUTER_CONNECTIONS, bound=bound,
                               allocator_class=allocator_class)


#: One router between neighbours that keep the protocol: a 2x1 mesh (one neighbour, east,
#: and one tile), 2 VCs x 2 entries, 6-bit flits.
SMALL_ROUTER = RouterParams(flit=SMALL_FLIT, geometry=MeshGeometry(2, 1), x=0, y=0, depth=2,
                            counter_width=2)


def small_router(router_class=router.Router, wire_requests=True, injection_register=False):
    return RouterCreditProperties(replace(SMALL_ROUTER, wire_requests=wire_requests,
                                          injection_register=injection_register),
                                  router_class=router_class)


PROOFS = [
    FormalCheck("noc_round_robin", lambda: RoundRobinProperties(4), depth=6,
                description="grant one-hot among requests; served within count grants"),
    FormalCheck("noc_allocator", lambda: AllocatorProperties(3, 3, 2, bound=9), depth=11,
                engine=YICES, description="matching, grants to requesters, served within "
                                          "vcs x inputs = 9 cycles"),
    FormalCheck("noc_router_allocator", router_allocator, depth=12, engine=YICES,
                description="the (1, 1) router's allocator: served within 10 cycles"),
]

#: Bounded from reset: the router's buffers are memories, whose contents k-induction would
#: need restated as invariants. Seven steps cover a VC's two credits spent and returned and
#: a third flit waiting for one (~20 s).
ROUTER_BMC = FormalCheck("noc_router_credits", small_router, mode="bmc", depth=7,
                         engine=YICES, description="credits + in flight + downstream = depth "
                                                   "per output VC; input buffers = credits out")
# Both registered options (as test_router[registered]): a flit asks from the input's
# registers only, and an injected flit is registered with its route first (the package
# uses the latter).
REGISTERED_ROUTER_BMC = replace(
    ROUTER_BMC, name="noc_router_credits_registered_requests",
    design=lambda: small_router(wire_requests=False, injection_register=True))


def test_router_connections_are_the_routers():
    from chipknit.tb.tests.noc_common import router_top
    dut = router_top(columns=4, rows=4, x=1, y=1)
    reach = [dut.reach(i) for i in range(5)]
    assert ROUTER_CONNECTIONS == tuple(tuple(i for i in range(5) if o in reach[i])
                                       for o in range(5))


@pytest.mark.parametrize("formal", PROOFS, ids=lambda formal: formal.name)
def test_proof(formal):
    result = check(formal)
    assert result.passed, result.summary() + "\n" + result.log.read_text()[-2000:]
    assert "successful proof by k-induction" in result.log.read_text()


@pytest.mark.parametrize("formal", [ROUTER_BMC, REGISTERED_ROUTER_BMC],
                         ids=["wire-requests", "registered-requests"])
def test_router_credits_bounded(formal):
    result = check(formal)
    assert result.passed, result.summary() + "\n" + result.log.read_text()[-2000:]
    assert f"Checking assertions in step {formal.depth - 1}" in result.log.read_text()


def test_service_bound_is_tight():
    """One cycle less than the bound proven above has a counterexample."""
    result = check(FormalCheck("must_fail_noc_router_allocator_bound",
                               lambda: router_allocator(bound=9), mode="bmc", depth=14,
                               engine=YICES))
    assert result.status == "FAIL", result.summary()


# Realistic bugs in the real code, one per property: each must give a counterexample.
ALLOCATOR = (allocator, "PreselectAllocator")
ROUND_ROBIN = (allocator, "RoundRobin")
ROUTER = (router, "Router")
MUTANTS = {
    # The round-robin priority never moves (neither ``last`` nor the precedence registers):
    # a fixed-priority arbiter starves requesters.
    "rr_fixed_priority": (ROUND_ROBIN, "with m.If(self.advance & requests.any()):",
                          "with m.If(0):"),
    # Every requester is granted, not only the first after the last one served.
    "rr_grants_all": (ROUND_ROBIN, "self.grant.eq(requests & ~self.blocked)",
                      "self.grant.eq(requests)"),
    # The precedence registers are updated as if the order started at the requester served
    # (off by one): the grant no longer follows the round-robin order.
    "rr_order_off_by_one": (ROUND_ROBIN, "bit.eq(~self.grant[j:k].any())",
                            "bit.eq(~self.grant[j + 1:k + 1].any())"),
    # The pre-selection moves on from a VC that lost (the allocator before the formal
    # checks): a VC offered every other cycle can lose every time to an output's
    # round-robin, so it starves (found by this check).
    "alloc_rotates_past_loser": (ALLOCATOR, "kept.eq(Mux(keep, chosen, rotate))",
                                 "kept.eq(rotate)"),
    # An input asks outputs for every VC, not only the offered one: it wins two outputs,
    # or an output for a VC that did not ask for it.
    "alloc_all_vcs_ask": (ALLOCATOR,
                          "acc = acc | (self.requests[i][v] & offered[v].replicate(outputs))",
                          "acc = acc | self.requests[i][v]"),
    # The router sends without a credit.
    "router_no_credit_check": (ROUTER, "req_port[k] & credit_ok[o][v] & (~req_head",
                               "req_port[k] & (~req_head"),
    # A grant does not spend its credit.
    "router_credit_not_spent": (ROUTER, "nxt.eq(credits[o][v] + credit_in[o][v] - go_reg[o][v])",
                                "nxt.eq(credits[o][v] + credit_in[o][v])"),
    # An input returns a credit when a flit arrives, not when it leaves the buffer.
    "router_credit_on_arrival": (ROUTER, "self.link_in[i].credit.eq(Cat(pop_regs))",
                                 "self.link_in[i].credit.eq(Cat(pushes))"),
}


def _mutant_design(name):
    (module, class_name), old, new = MUTANTS[name]
    broken = mutant(module, class_name, old, new)
    if class_name == "RoundRobin":
        return FormalCheck(f"must_fail_{name}",
                           lambda: RoundRobinProperties(4, arbiter_class=broken),
                           mode="bmc", depth=8)
    if class_name == "PreselectAllocator":
        return FormalCheck(f"must_fail_{name}", lambda: router_allocator(
            allocator_class=broken), mode="bmc", depth=14, engine=YICES)
    # The rebuilt module has its own RouterParams class: take the real one's parameters.
    broken.__init__.__globals__["RouterParams"] = router.RouterParams
    return FormalCheck(f"must_fail_{name}", lambda: small_router(broken), mode="bmc",
                       depth=ROUTER_BMC.depth, engine=YICES)


@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_noc_properties_catch_bugs(name):
    result = check(_mutant_design(name))
    assert result.status == "FAIL", result.summary()
    assert result.traces, "a failed check must leave a counterexample trace"
