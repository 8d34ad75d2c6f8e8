"""``privguard ledger verify|export|purge|stats``: the ledger for auditors and DPOs.

Decides what the ledger commands accept and how they exit:

* the ledger comes from ``--ledger URL`` (after the action), ``PRIVGUARD_LEDGER``, or
  else the documented default ``sqlite:///privguard-ledger.db`` in the current folder;
  the one opened is named on stderr. A missing, malformed or unreachable ledger is
  one line on stderr and exit 2, and the commands never create a ledger that is not
  there;
* ``verify`` exits 0 when the whole chain holds, 1 naming the first bad receipt
  or the problem (a rewritten or rolled-back head, a checkpoint the chain no
  longer holds), 2 when a keyed ledger is given without its key. The key comes
  from ``PRIVGUARD_LEDGER_KEY`` or else ``PRIVGUARD_SECRET_KEY`` (comma-separated
  for several); ``--expect-head [SEQ:]HASH`` and ``--checkpoint FILE`` (the app's
  log, or any file holding its ``privguard ledger checkpoint`` lines) name
  receipts the chain must still hold;
* ``export`` writes JSON lines (or ``--format csv``) filtered by ``--since`` /
  ``--until`` (ISO dates or times, UTC when naive; a date-only ``--until``
  includes that day) and ``--id`` (a visitor's access request: exit 1 when that
  receipt does not exist);
* ``purge --older-than AGE`` takes ``d``ays, ``w``eeks, ``m``onths (calendar
  months, not minutes) or ``y``ears; the default ``12m`` is the policy's retention;
* ``stats`` prints choices per month, regime and category, or ``--json``.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from datetime import UTC, date, datetime, timedelta
from typing import IO, Any

from privguard.errors import ConfigError, LedgerError
from privguard.ledger.base import (
    COLUMNS,
    Checkpoint,
    Ledger,
    LedgerKey,
    MalformedRow,
    derive_ledger_keys,
    parse_checkpoints,
    redact_url,
)
from privguard.ledger.factory import open_ledger
from privguard.settings import DEFAULT_LEDGER

__all__ = ["DEFAULT_RETENTION", "parse_age", "register"]

#: ``purge`` default: the policy keeps receipts for 12 months.
DEFAULT_RETENTION = "12m"
ENV_VAR = "PRIVGUARD_LEDGER"

_AGE = re.compile(r"^\s*(\d{1,5})\s*([dwmy])\s*$", re.IGNORECASE)


def _minus_months(now: datetime, months: int) -> datetime:
    index = now.year * 12 + (now.month - 1) - months
    year, month = divmod(index, 12)
    month += 1
    if year < 1:
        raise ValueError("age reaches before year 1")
    next_first = date(year + (month == 12), month % 12 + 1, 1)
    last_day = (next_first - timedelta(days=1)).day
    return now.replace(year=year, month=month, day=min(now.day, last_day))


def parse_age(text: str, now: datetime) -> timedelta:
    """``"12m"`` → the time between ``now`` and the same moment 12 calendar months earlier.

    Units: ``d`` days, ``w`` weeks, ``m`` months, ``y`` years. ``ValueError`` otherwise.
    """
    match = _AGE.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not an age like 365d, 52w, 12m or 1y")
    amount, unit = int(match.group(1)), match.group(2).lower()
    if unit == "d":
        return timedelta(days=amount)
    if unit == "w":
        return timedelta(weeks=amount)
    months = amount if unit == "m" else amount * 12
    return now - _minus_months(now, months)


def _age_arg(text: str) -> str:
    try:
        parse_age(text, datetime.now(UTC))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _parse_when(text: str, *, end_of_day: bool) -> datetime:
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text.strip()):
            day = date.fromisoformat(text.strip())
            start = datetime(day.year, day.month, day.day, tzinfo=UTC)
            return start + timedelta(days=1) if end_of_day else start
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO date (2026-01-31) or time (2026-01-31T12:00:00+00:00)"
        ) from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _since_arg(text: str) -> datetime:
    return _parse_when(text, end_of_day=False)


def _until_arg(text: str) -> datetime:
    return _parse_when(text, end_of_day=True)


def _fail(message: str) -> int:
    first = message.strip().splitlines()[0] if message.strip() else "failed"
    print(f"privguard ledger: error: {first}", file=sys.stderr)
    return 2


def ledger_url(args: argparse.Namespace) -> tuple[str, str]:
    """The ledger to open and where that choice came from (``--ledger``, env, default)."""
    if args.ledger:
        return args.ledger, "--ledger"
    if os.environ.get(ENV_VAR):
        return os.environ[ENV_VAR], ENV_VAR
    return DEFAULT_LEDGER, f"the default; choose another with --ledger URL or {ENV_VAR}"


@contextlib.contextmanager
def _opened(args: argparse.Namespace) -> Iterator[Ledger]:
    url, source = ledger_url(args)
    keys = _keys(getattr(args, "ledger_keys", ()))
    if source == ENV_VAR or source == "--ledger":
        ledger = open_ledger(url, create=False, keys=keys)
    else:
        try:
            ledger = open_ledger(url, create=False, keys=keys)
        except (ConfigError, LedgerError, OSError) as exc:
            raise LedgerError(f"{exc} ({source})") from None
    # stderr, so that an export on stdout stays clean
    print(f"privguard ledger: {redact_url(url)} ({source})", file=sys.stderr)
    try:
        yield ledger
    finally:
        ledger.close()


def _guarded(action: Any) -> Any:
    """Turn a missing/bad/unreachable ledger into one line on stderr and exit 2."""

    def run(args: argparse.Namespace) -> int:
        try:
            with _opened(args) as ledger:
                return int(action(ledger, args))
        except MalformedRow as exc:  # found while reading: the chain is broken
            print(f"ledger BROKEN at {_where(exc.seq, exc.receipt_id)}: {exc}", file=sys.stderr)
            return 1
        except (ConfigError, LedgerError, OSError) as exc:
            return _fail(str(exc))

    run.__doc__ = action.__doc__
    return run


KEY_ENV_VARS = ("PRIVGUARD_LEDGER_KEY", "PRIVGUARD_SECRET_KEY")


def _keys(given: Sequence[bytes] = ()) -> tuple[LedgerKey, ...]:
    """The chain keys: ``given`` (the app's, via ``flask privguard``), else from the env."""
    if given:
        return derive_ledger_keys(given)
    for name in KEY_ENV_VARS:
        value = os.environ.get(name, "").strip()
        if value:
            return derive_ledger_keys(p.strip() for p in value.split(",") if p.strip())
    return ()


def _expect_arg(text: str) -> Checkpoint:
    seq_text, sep, digest = text.strip().rpartition(":")
    digest = digest.lower()
    if len(digest) != 64 or not set(digest) <= set("0123456789abcdef"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a head hash (64 hex) or SEQ:HASH")
    if sep and not seq_text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: SEQ must be a number")
    return Checkpoint(int(seq_text) if sep else None, digest)


def _expected(args: argparse.Namespace) -> list[Checkpoint] | None:
    expect = list(args.expect_head or ())
    for path in args.checkpoint or ():
        with open(path, encoding="utf-8", errors="replace") as handle:
            found = parse_checkpoints(handle.read())
        if not found:
            _fail(f"no 'privguard ledger checkpoint' line in {path}")
            return None
        expect.extend(found)
    return expect


def _verify(ledger: Ledger, args: argparse.Namespace) -> int:
    """Check the whole hash chain."""
    expect = _expected(args)
    if expect is None:
        return 2
    result = ledger.verify(expect)
    if result.needs_key:
        return _fail(result.reason)
    if result.ok:
        head = ledger.head()
        anchor = f", after {head.purged} purged" if head.purged else ""
        print(f"ledger ok: {result.checked} receipt(s) verified{anchor}")
        # Auditors record the head: a later verify then also proves nothing was cut off.
        print(f"head: seq {head.seq} hash {head.hash}")
        if head.key_id is None:
            print(
                "not keyed: a database writer could rewrite it unnoticed; the app keys it "
                "when it opens it (set PRIVGUARD_SECRET_KEY to check a keyed ledger)"
            )
        else:
            earlier = f" (seq 1-{head.keyed_from - 1} before: plain SHA-256)"
            print(
                f"keyed with key id {head.key_id} from seq {head.keyed_from}"
                f"{earlier if head.keyed_from > 1 else ''}; head signature ok"
            )
        if expect:
            print(f"checkpoints: {result.checkpoints} of {len(expect)} held (others purged)")
        return 0
    where = f"at {result.first_bad}" if result.first_bad else "after the last receipt"
    print(f"ledger BROKEN {where}: {result.reason} ({result.checked} receipt(s) verified before)")
    return 1


def _where(seq: int | None, receipt_id: str | None) -> str:
    return f"seq {seq} (id {receipt_id})" if seq is not None else "an unreadable receipt"


def _export(ledger: Ledger, args: argparse.Namespace) -> int:
    """Write receipts as JSON lines or CSV."""
    receipts = ledger.iter_receipts(since=args.since, until=args.until, receipt_id=args.id)
    with _output(args.output) as out:
        count = 0
        if args.format == "csv":
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(COLUMNS)
            for receipt in receipts:
                row = receipt.to_json()
                row["granted"] = " ".join(receipt.granted)
                row["denied"] = " ".join(receipt.denied)
                writer.writerow(_csv_value(row[name]) for name in COLUMNS)
                count += 1
        else:
            for receipt in receipts:
                out.write(json.dumps(receipt.to_json(), ensure_ascii=False) + "\n")
                count += 1
    if args.id is not None and count == 0:
        print(f"privguard ledger: no receipt with id {args.id!r}", file=sys.stderr)
        return 1
    return 0


def _csv_value(value: object) -> object:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else value


@contextlib.contextmanager
def _output(path: str | None) -> Iterator[IO[str]]:
    if path is None or path == "-":
        yield sys.stdout
        sys.stdout.flush()
        return
    with open(path, "w", encoding="utf-8", newline="") as handle:
        yield handle


def _purge(ledger: Ledger, args: argparse.Namespace) -> int:
    """Delete receipts past the retention period."""
    now = datetime.now(UTC)
    older_than = parse_age(args.older_than, now)
    deleted = ledger.purge(older_than, now)
    head = ledger.head()
    print(
        f"purged {deleted} receipt(s) older than {(now - older_than).date().isoformat()}; "
        f"chain anchored at seq {head.anchor_seq}"
    )
    return 0


def _stats(ledger: Ledger, args: argparse.Namespace) -> int:
    """Print choices per month, regime and category."""
    rows = ledger.stats(since=args.since, until=args.until)
    if args.json:
        print(json.dumps([asdict(row) for row in rows], indent=2))
        return 0
    header = ("month", "regime", "category", "granted", "denied", "granted %")
    table = [header] + [
        (
            r.month,
            r.regime,
            r.category,
            str(r.granted),
            str(r.denied),
            f"{100 * r.granted / (r.granted + r.denied):.1f}" if r.granted + r.denied else "-",
        )
        for r in rows
    ]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    for line in table:
        cells = [
            cell.ljust(widths[i]) if i < 3 else cell.rjust(widths[i]) for i, cell in enumerate(line)
        ]
        print("  ".join(cells).rstrip())
    if not rows:
        print("(no receipts)")
    return 0


def _usage(parser: argparse.ArgumentParser) -> Any:
    def run(args: argparse.Namespace) -> int:
        parser.print_help(sys.stderr)
        return 2

    return run


def register(subparsers: Any) -> None:
    """Add ``ledger verify|export|purge|stats`` to the ``privguard`` parser."""
    ledger = subparsers.add_parser(
        "ledger",
        help="verify, export, purge or summarise the consent ledger",
        description="Work with the consent ledger (proof of consent).",
    )
    ledger.set_defaults(func=_usage(ledger))
    actions = ledger.add_subparsers(dest="ledger_action", metavar="ACTION")

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--ledger",
        metavar="URL",
        help=f"ledger URL (sqlite:///path.db or postgresql://…); default ${ENV_VAR}, "
        f"else {DEFAULT_LEDGER}",
    )
    window = argparse.ArgumentParser(add_help=False)
    window.add_argument("--since", type=_since_arg, metavar="DATE", help="from this ISO date/time")
    window.add_argument(
        "--until", type=_until_arg, metavar="DATE", help="up to this ISO date (inclusive) or time"
    )

    verify = actions.add_parser(
        "verify", parents=[common], help="check the hash chain (exit 1 when broken)"
    )
    verify.add_argument(
        "--expect-head",
        action="append",
        type=_expect_arg,
        metavar="[SEQ:]HASH",
        help="a head recorded earlier (from a previous verify); the chain must still hold it",
    )
    verify.add_argument(
        "--checkpoint",
        action="append",
        metavar="FILE",
        help="a file (e.g. the app's log) with 'privguard ledger checkpoint' lines to compare",
    )
    verify.set_defaults(func=_guarded(_verify))

    export = actions.add_parser(
        "export", parents=[common, window], help="write receipts as JSON lines or CSV"
    )
    export.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    export.add_argument("--id", metavar="RECEIPT_ID", help="only this receipt (access request)")
    export.add_argument("--output", "-o", metavar="FILE", help="write here instead of stdout")
    export.set_defaults(func=_guarded(_export))

    purge = actions.add_parser(
        "purge", parents=[common], help="delete receipts past retention (default 12 months)"
    )
    purge.add_argument(
        "--older-than",
        type=_age_arg,
        default=DEFAULT_RETENTION,
        metavar="AGE",
        help="e.g. 365d, 52w, 12m (months), 1y; default %(default)s",
    )
    purge.set_defaults(func=_guarded(_purge))

    stats = actions.add_parser(
        "stats", parents=[common, window], help="choices per regime and category per month"
    )
    stats.add_argument("--json", action="store_true", help="print JSON instead of a table")
    stats.set_defaults(func=_guarded(_stats))
