"""The consent ledger: hash-chained proof of every consent choice.

``open_ledger(url)`` gives a :class:`Ledger` (SQLite or PostgreSQL);
:class:`LedgerWriter` is what the middleware holds: it stores receipts from a
background thread and spools them locally while the database is down.
``ledger_kind(url)`` checks a URL completely without I/O (``ConfigError``), so
start-up code can refuse a bad one early; ``redact_url`` masks its password.
This package only re-exports; the rules live in :mod:`privguard.ledger.base`,
the choice of back-end in :mod:`privguard.ledger.factory`.
"""

from privguard.ledger.base import GENESIS_HASH as GENESIS_HASH
from privguard.ledger.base import ChainHead as ChainHead
from privguard.ledger.base import Checkpoint as Checkpoint
from privguard.ledger.base import Ledger as Ledger
from privguard.ledger.base import LedgerKey as LedgerKey
from privguard.ledger.base import Receipt as Receipt
from privguard.ledger.base import ReceiptDraft as ReceiptDraft
from privguard.ledger.base import StatsRow as StatsRow
from privguard.ledger.base import VerifyResult as VerifyResult
from privguard.ledger.base import derive_ledger_keys as derive_ledger_keys
from privguard.ledger.base import hash_receipt as hash_receipt
from privguard.ledger.base import redact_url as redact_url
from privguard.ledger.factory import ledger_kind as ledger_kind
from privguard.ledger.factory import open_ledger as open_ledger
from privguard.ledger.writer import LedgerWriter as LedgerWriter

__all__ = [
    "GENESIS_HASH",
    "ChainHead",
    "Checkpoint",
    "Ledger",
    "LedgerKey",
    "LedgerWriter",
    "Receipt",
    "ReceiptDraft",
    "StatsRow",
    "VerifyResult",
    "derive_ledger_keys",
    "hash_receipt",
    "ledger_kind",
    "open_ledger",
    "redact_url",
]
