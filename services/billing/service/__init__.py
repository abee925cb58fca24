"""Billing's use cases, one module per group (cosmicpython's handlers, Polar's one service per domain).

Every module has the same shape: one class of async use cases over ServiceCore (service/_core.py), which
owns the transaction and request-id idempotency (scoped by builder) and the reads several groups share.
BillingService is their union, the one object app.py builds and api.py calls.

    customers.py      CreateCustomer, GetCustomer, ListCustomers
    plans.py          CreatePlan, GetPlan, ListPlans, PublishPlanVersion, ApplyPlanYaml, SetPlatformFee
    subscriptions.py  Subscribe, ChangePlan
    invoicing.py      PreviewInvoice, GetInvoice, ListInvoices (and the invoice rows a close writes)
    close.py          ClosePeriod (two phases: read usage holding no connection, then finalize)
    payments.py       RecordPayment, VoidInvoice (and the earnings an invoice gets when paid)
    credit_notes.py   IssueCreditNote (what was due reduced; the rest to the wallet or a refund)
    refunds.py        ListRefunds, MarkRefund
    wallets.py        TopUpWallet, GetWallet
    earnings.py       ListEarnings (and the feed rows payments and closes append)
    simulation.py     SimulatePlan, PriceUsageProfiles (draft plans priced; nothing written)
    economics.py      GetUnitEconomics (a month per meter and workflow, from its invoices)
    spend.py          SetSpendControl, DeleteSpendControl, ListSpendControls, GetSpendPolicy (SpendService)
    leases.py         AcquireSpendLease, ReportSpendLease, and the lease expiry sweep
    alerts.py         ListAlerts, the alerts every group raises, and the margin watch
    explain.py        ExplainInvoiceLine, ExportInvoiceLine (a line's events, through metering)
"""

from __future__ import annotations

from billing.service.alerts import Alerts
from billing.service.close import Closing
from billing.service.credit_notes import CreditNotes
from billing.service.customers import Customers
from billing.service.earnings import Earnings
from billing.service.economics import Economics
from billing.service.explain import Explaining
from billing.service.invoicing import Invoicing
from billing.service.leases import Leases
from billing.service.payments import Payments
from billing.service.plans import Plans
from billing.service.refunds import Refunds
from billing.service.simulation import Simulation
from billing.service.spend import SpendControls
from billing.service.subscriptions import Subscriptions
from billing.service.wallets import Wallets

__all__ = ["BillingService"]


class BillingService(
    Customers,
    Plans,
    Subscriptions,
    Invoicing,
    Closing,
    CreditNotes,
    Payments,
    Refunds,
    Wallets,
    Earnings,
    Simulation,
    Economics,
    SpendControls,
    Leases,
    Alerts,
    Explaining,
):
    """Every billing use case; the constructor is ServiceCore's."""
