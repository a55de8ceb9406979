"""The long-running side: ``verifier run`` (run.py) and its /metrics (exporter.py)."""
