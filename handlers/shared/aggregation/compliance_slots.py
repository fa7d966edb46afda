"""The compliance refresh staggered over the hours of its cadence (pure).

A full Security Hub read at 100,000 tenants is about 1,000 GetFindings pages,
and GetFindings is limited to 3 requests per second: 5.5 minutes in one run.
A sharded run therefore reads 1/N of the accounts each hour (N = the refresh
cadence in hours), so every account is still read once every N hours and one
run reads only its slot.

A slot is a set of AwsAccountId prefixes, filtered with `Comparison: PREFIX`.
Filter values on the same attribute are OR'ed, and one attribute takes at
most 20 values (Security Hub API reference, StringFilter and
AwsSecurityFindingFilters:
docs.aws.amazon.com/securityhub/1.0/APIReference/API_StringFilter.html,
docs.aws.amazon.com/securityhub/1.0/APIReference/API_AwsSecurityFindingFilters.html).

The prefixes of all slots together are prefix-free and cover every 12-digit
account id: each account, including one that joins the roster after the plan
was made, falls in exactly one slot. So a roster that changes between slots
never drops an account or reads one twice; the plan is made once (from the
roster, balanced by its accounts) and kept in the bookkeeping.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from handlers.shared.aggregation.hours import HOUR, floor_hour, refresh_due

ACCOUNT_ID_DIGITS = 12
DIGITS = "0123456789"
MAX_FILTER_VALUES = 20  # per finding attribute in one GetFindings request
# Leaves of the plan hold at most 1/(slots x GRANULARITY) of the roster, so a
# slot's share is off its 1/slots by at most that much.
GRANULARITIES = (10, 5, 2, 1)


@dataclass(frozen=True)
class CompliancePlan:
    """Slot k's account prefixes; slot k is first due `k` hours after `planned_hour`."""

    slots: tuple[tuple[str, ...], ...]
    planned_hour: dt.datetime

    def slot_of(self, account_id: str) -> int | None:
        for number, prefixes in enumerate(self.slots):
            if any(account_id.startswith(prefix) for prefix in prefixes):
                return number
        return None

    def due_slots(
        self, last_refreshed: Mapping[int, dt.datetime], now: dt.datetime
    ) -> tuple[int, ...]:
        """Slots due at `now`: read `len(slots)` hours ago or longer (usually exactly one).

        A slot never read yet counts as read `len(slots) - k` hours before the
        plan was made, which staggers the first reads one hour apart.
        """
        every = len(self.slots)
        return tuple(
            number
            for number in range(every)
            if refresh_due(
                last_refreshed.get(number, self.planned_hour + (number - every) * HOUR),
                now,
                every,
            )
        )

    def to_item(self) -> dict[str, Any]:
        return {
            "slots": [list(prefixes) for prefixes in self.slots],
            "planned_hour": self.planned_hour.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> CompliancePlan:
        return cls(
            slots=tuple(tuple(str(prefix) for prefix in slot) for slot in item["slots"]),
            planned_hour=dt.datetime.fromisoformat(str(item["planned_hour"])),
        )


def plan(account_ids: Iterable[str], slots: int, now: dt.datetime) -> CompliancePlan | None:
    """A plan balanced by `account_ids`, or None when no plan fits 20 prefixes a slot.

    The account space is split as a digit trie until no leaf holds more than
    its share of the roster; leaves are dealt to slots in account order
    (contiguous ranges, cut at the roster's quantiles), and each slot's leaves
    are merged back into the shortest prefixes that cover exactly them.
    Subtrees without any roster account go to whichever slot has the fewest
    prefixes: they only decide where future accounts land.
    """
    accounts = sorted(
        {a for a in account_ids if len(a) == ACCOUNT_ID_DIGITS and a.isascii() and a.isdigit()}
    )
    if slots < 1 or not accounts:
        return None
    for granularity in GRANULARITIES:
        limit = max(1, len(accounts) // (slots * granularity))
        leaves = _leaves(accounts, limit)
        assigned = _deal(leaves, len(accounts), slots)
        result = _merge(assigned, slots)
        if result is not None:
            return CompliancePlan(slots=result, planned_hour=floor_hour(now))
    return None


def _leaves(accounts: Sequence[str], limit: int) -> list[tuple[str, int]]:
    """(prefix, roster accounts under it) in account order, split until each holds <= limit.

    `accounts` is sorted, so the accounts under a prefix are one contiguous
    run: a split costs ten bisections, not passes over its accounts, and a
    roster crowded under a long common prefix costs no more than a spread one.
    """
    leaves: list[tuple[str, int]] = []

    def split(prefix: str, low: int, high: int) -> None:
        if high - low <= limit or len(prefix) == ACCOUNT_ID_DIGITS:
            leaves.append((prefix, high - low))
        else:
            split_children(prefix, low, high)

    def split_children(prefix: str, low: int, high: int) -> None:
        for digit in DIGITS:
            child = prefix + digit
            # ":" sorts right after "9": [child, child + ":") holds exactly child's accounts.
            end = bisect.bisect_left(accounts, child + ":", low, high)
            split(child, low, end)
            low = end

    # The root is always split: "" is not a filter value.
    split_children("", 0, len(accounts))
    return leaves


def _deal(leaves: list[tuple[str, int]], total: int, slots: int) -> dict[str, int | None]:
    """Leaf -> slot: the slot its accounts' midpoint falls in; None for an empty leaf."""
    assigned: dict[str, int | None] = {}
    before = 0
    for prefix, count in leaves:
        if count == 0:
            assigned[prefix] = None
            continue
        assigned[prefix] = min(slots - 1, int((before + count / 2) * slots / total))
        before += count
    return assigned


def _merge(assigned: Mapping[str, int | None], slots: int) -> tuple[tuple[str, ...], ...] | None:
    """Each slot's prefixes: a subtree whose accounts all lie in one slot is one prefix."""
    owners: dict[str, set[int]] = {}
    for prefix, slot in assigned.items():
        for depth in range(len(prefix) + 1):
            owners.setdefault(prefix[:depth], set())
            if slot is not None:
                owners[prefix[:depth]].add(slot)
    result: list[list[str]] = [[] for _ in range(slots)]
    empty: list[str] = []

    def emit(prefix: str) -> None:
        held = owners[prefix]
        if prefix in assigned or len(held) == 1:
            if held:
                result[next(iter(held))].append(prefix)
            else:
                empty.append(prefix)
            return
        if not held:
            empty.append(prefix)
            return
        for digit in DIGITS:
            emit(prefix + digit)

    for digit in DIGITS:
        emit(digit)
    for prefix in empty:
        min(result, key=len).append(prefix)
    if any(len(prefixes) > MAX_FILTER_VALUES for prefixes in result):
        return None
    return tuple(tuple(sorted(prefixes)) for prefixes in result)


def chunks(prefixes: Sequence[str]) -> list[tuple[str, ...]]:
    """The prefixes in groups GetFindings accepts (20 values per attribute)."""
    return [
        tuple(prefixes[start : start + MAX_FILTER_VALUES])
        for start in range(0, len(prefixes), MAX_FILTER_VALUES)
    ]
