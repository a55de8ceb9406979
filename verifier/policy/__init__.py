"""Policy: load (with positions) -> compiled ``Policy`` -> pure ``evaluate``."""
