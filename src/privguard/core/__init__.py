"""privguard's core: pure decisions over plain values.

No I/O, no clock reads and no framework imports live here: adapters build a
:class:`~privguard.core.request.RequestView`, hand it with the settings, the
outside lookups and the time to :func:`~privguard.core.decision.decide`, and
apply the resulting :class:`~privguard.core.decision.Decision`.
"""
