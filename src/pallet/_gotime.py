"""Go's ``time.Time`` as ``encoding/json`` reads and writes it: RFC 3339, nanoseconds, offsets.

BuildKit writes image configs and history with Go's ``time.Time.MarshalJSON`` (``RFC3339Nano``):
trailing zeros of the fraction trimmed, ``Z`` for UTC and ``±hh:mm`` otherwise, the offset the
time was parsed with kept. A :class:`Timestamp` keeps exactly that (seconds, nanoseconds,
offset), so a time read from a config is written back byte for byte. :class:`datetime` would
lose the nanoseconds, and cannot hold the year 0 that Go accepts.

Calendar arithmetic is Howard Hinnant's ``days_from_civil``/``civil_from_days`` (proleptic
Gregorian, floor division), so any ``int`` of seconds has a date.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

from .errors import InvalidArgument

__all__ = ["Timestamp"]


def _days_from_civil(y: int, m: int, d: int) -> int:
    y -= m <= 2
    era = y // 400  # floor division: no C-style correction
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _civil_from_days(z: int) -> tuple[int, int, int]:
    z += 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + (3 if mp < 10 else -9)
    return yoe + era * 400 + (m <= 2), m, d


def _days_in_month(y: int, m: int) -> int:
    if m == 2:
        return 29 if (y % 4 == 0 and y % 100 != 0) or y % 400 == 0 else 28
    return 30 if m in (4, 6, 9, 11) else 31


_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})\Z"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Timestamp:
    """An instant plus the UTC offset it is written with; nanosecond precision (Go ``time.Time``).

    Equality compares all three fields (Go's ``reflect.DeepEqual`` on times of the same zone);
    use :meth:`after` to compare instants.
    """

    seconds: int
    nanos: int = 0
    offset: int = 0

    @classmethod
    def parse(cls, text: str) -> Timestamp:
        """Parse RFC 3339 as Go's ``time.Time.UnmarshalJSON`` does (strict form).

        Raises:
            InvalidArgument: not an RFC 3339 time.
        """
        m = _RFC3339.match(text)
        bad = InvalidArgument(f"parsing time {json.dumps(text)}: not an RFC 3339 time")
        if m is None:
            raise bad
        y, mo, d, hh, mi, ss = (int(m.group(i)) for i in range(1, 7))
        frac, zone = m.group(7) or "", m.group(8)
        if not (1 <= mo <= 12 and 1 <= d <= _days_in_month(y, mo) and hh < 24 and mi < 60):
            raise bad
        if ss >= 60:
            raise bad
        offset = 0
        if zone != "Z":
            oh, om = int(zone[1:3]), int(zone[4:6])
            if oh >= 24 or om >= 60:
                raise bad
            offset = (oh * 3600 + om * 60) * (-1 if zone[0] == "-" else 1)
        nanos = int((frac + "000000000")[:9]) if frac else 0
        secs = _days_from_civil(y, mo, d) * 86400 + hh * 3600 + mi * 60 + ss - offset
        return cls(seconds=secs, nanos=nanos, offset=offset)

    @classmethod
    def from_unix(cls, seconds: int) -> Timestamp:
        """``time.Unix(seconds, 0).UTC()`` (how a SOURCE_DATE_EPOCH becomes a time)."""
        return cls(seconds=int(seconds))

    @classmethod
    def from_datetime(cls, dt: datetime) -> Timestamp:
        """An aware datetime keeps its offset; a naive one is taken as UTC."""
        if dt.tzinfo is None or dt.utcoffset() is None:
            dt = dt.replace(tzinfo=UTC)
        off = dt.utcoffset()
        offset = int(off.total_seconds()) if off is not None else 0
        delta = dt.astimezone(UTC).replace(tzinfo=None) - datetime(1970, 1, 1)
        return cls(
            seconds=delta.days * 86400 + delta.seconds,
            nanos=delta.microseconds * 1000,
            offset=offset,
        )

    def to_datetime(self) -> datetime:
        """An aware datetime (microsecond precision) in this timestamp's offset."""
        tz = timezone(timedelta(seconds=self.offset)) if self.offset else UTC
        base = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(
            seconds=self.seconds, microseconds=self.nanos // 1000
        )
        return base.astimezone(tz)

    def after(self, other: Timestamp) -> bool:
        """Go's ``t.After(u)``: a strictly later instant."""
        return (self.seconds, self.nanos) > (other.seconds, other.nanos)

    def rfc3339(self) -> str:
        """RFC 3339 with nanoseconds (Go's ``RFC3339Nano``, as ``MarshalJSON`` writes it).

        Raises:
            InvalidArgument: the year is outside 0-9999 (Go refuses to marshal it too).
        """
        local = self.seconds + self.offset
        days, rem = divmod(local, 86400)
        y, m, d = _civil_from_days(days)
        if not 0 <= y <= 9999:
            raise InvalidArgument("Time.MarshalJSON: year outside of range [0,9999]")
        hh, rem = divmod(rem, 3600)
        mi, ss = divmod(rem, 60)
        out = f"{y:04d}-{m:02d}-{d:02d}T{hh:02d}:{mi:02d}:{ss:02d}"
        if self.nanos:
            out += "." + f"{self.nanos:09d}".rstrip("0")
        if self.offset == 0:
            return out + "Z"
        sign = "-" if self.offset < 0 else "+"
        oh, om = divmod(abs(self.offset) // 60, 60)
        return f"{out}{sign}{oh:02d}:{om:02d}"

    def __str__(self) -> str:
        return self.rfc3339()
