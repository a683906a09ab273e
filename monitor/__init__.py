"""Watching mailboxes: sources, the raw archive, the ledger, and reading the evidence."""
