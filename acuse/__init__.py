"""The composition root: the command line and the daemon, which wire monitor and reconcile."""
