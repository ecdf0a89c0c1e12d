"""Finance-facing reports written to the outbox."""
