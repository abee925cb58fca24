"""Payouts: the double-entry ledger that settles billing's earnings feed, payout runs, statements."""
