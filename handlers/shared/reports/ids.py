"""Time-ordered ids for reports and schedules (ULID layout, pure).

26 Crockford base32 characters: a 48-bit millisecond timestamp followed by 80
random bits. Ids of later items sort after earlier ones as plain strings, so a
tenant's reports come back newest first from a reverse Query, with no index.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
ID_LENGTH = 26
_TIME_CHARS = 10
_RANDOM_BITS = 80
_ID = re.compile(f"[0-7][{ALPHABET}]{{{ID_LENGTH - 1}}}")


def _encode(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        value, digit = divmod(value, 32)
        chars.append(ALPHABET[digit])
    return "".join(reversed(chars))


def new_id(now: dt.datetime | None = None) -> str:
    moment = now or dt.datetime.now(dt.UTC)
    milliseconds = int(moment.timestamp() * 1000)
    return _encode(milliseconds, _TIME_CHARS) + _encode(
        secrets.randbits(_RANDOM_BITS), ID_LENGTH - _TIME_CHARS
    )


def is_valid_id(value: object) -> bool:
    # fullmatch: `$` would also match before a trailing newline.
    return isinstance(value, str) and bool(_ID.fullmatch(value))


def id_time(value: str) -> dt.datetime:
    """The creation time encoded in an id (millisecond precision)."""
    milliseconds = 0
    for char in value[:_TIME_CHARS]:
        milliseconds = milliseconds * 32 + ALPHABET.index(char)
    return dt.datetime.fromtimestamp(milliseconds / 1000, dt.UTC)
