"""privguard."""
