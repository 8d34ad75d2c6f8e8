"""A small Flask shop protected by privguard in one line (``PrivGuard(app)``)."""
