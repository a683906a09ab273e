"""The composition root: the command line and the daemon that wire monitor and reconcile together."""
