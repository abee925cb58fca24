"""Billing: customers, plans, subscriptions, invoices, payments, wallets and the earnings feed."""
