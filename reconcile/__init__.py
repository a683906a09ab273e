"""Sends from PACO's log, their match to evidence, their states, and the queries behind the CLI."""
