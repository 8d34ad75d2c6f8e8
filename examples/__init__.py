"""Example shops protected by privguard (run one with ``python -m examples.<shop>``)."""
