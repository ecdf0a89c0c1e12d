"""meterline: cost and usage feeds to reconciled invoices."""

__version__ = "0.1.0"
