"""Budgets: monthly spend limits per tenant or per service, their status and their alerts
(DESIGN.md, "Payments and budgets")."""
