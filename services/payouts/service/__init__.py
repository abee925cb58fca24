"""Payouts' use cases, one module per group; PayoutsService is all of them over one engine.

base.py     the engine, clients, clock and the request-id helper every use case shares
payees.py   payees, balances, transfers
feed.py     billing's earnings feed, exactly once; hold releases
runs.py     payout runs, paid / failed, the bank file
statements.py, reconcile.py
"""

from __future__ import annotations

from payouts.service.base import Policy
from payouts.service.payees import PayeeInput, Payees
from payouts.service.reconcile import Reconcile
from payouts.service.runs import Runs
from payouts.service.statements import Statements


class PayoutsService(Payees, Runs, Statements, Reconcile):
    """Every payouts use case; see the modules for each group."""


__all__ = ["PayeeInput", "PayoutsService", "Policy"]
