"""A small Starlette shop protected by privguard in one line (``add_middleware``)."""
