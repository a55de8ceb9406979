"""Where judged flows go: the audit report, CSV flow records, (daemon) metrics
and events. Every sink offers ``flow(flow, judgements)``."""
