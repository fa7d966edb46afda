import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from handlers.shared.http import ApiError
from handlers.shared.reports.schedules import (
    WEEKDAYS,
    ScheduleSpec,
    next_run,
    parse_schedule,
    schedule_item,
    schedule_view,
    spec_of,
)

UTC = dt.UTC
VALID = {
    "type": "summary",
    "format": "pdf",
    "period": "30d",
    "frequency": "daily",
    "time_utc": "06:30",
    "recipients": ["ops@acme.example"],
}


def spec(frequency="daily", time_utc="06:30", day_of_week=None, day_of_month=None):
    return ScheduleSpec(
        report_type="summary",
        format="pdf",
        period="30d",
        frequency=frequency,
        time_utc=time_utc,
        recipients=("ops@acme.example",),
        day_of_week=day_of_week,
        day_of_month=day_of_month,
    )


def rejected(body) -> tuple[str, str]:
    with pytest.raises(ApiError) as raised:
        parse_schedule(body)
    assert raised.value.status == 400
    return raised.value.code, raised.value.message


def test_a_valid_body_is_normalised():
    parsed = parse_schedule(
        {
            **VALID,
            "format": "Excel",
            "frequency": "weekly",
            "day_of_week": "Friday",
            "recipients": [" ops@acme.example", "cfo@acme.example"],
            "customer_id": "someone-else",  # ignored, as everywhere
        }
    )
    assert parsed == ScheduleSpec(
        report_type="summary",
        format="xlsx",
        period="30d",
        frequency="weekly",
        time_utc="06:30",
        recipients=("ops@acme.example", "cfo@acme.example"),
        day_of_week="friday",
    )
    assert parse_schedule({**VALID, "frequency": "monthly", "day_of_month": 28}).day_of_month == 28
    assert parse_schedule({k: v for k, v in VALID.items() if k not in ("type", "period")}) == spec()


def test_a_whole_number_sent_as_21_0_is_day_21_as_json_schema_counts_integers() -> None:
    parsed = parse_schedule({**VALID, "frequency": "monthly", "day_of_month": 21.0})
    assert parsed.day_of_month == 21 and type(parsed.day_of_month) is int


@pytest.mark.parametrize(
    ("changes", "code", "message"),
    [
        (
            {"frequency": "hourly"},
            "invalid_frequency",
            "frequency must be one of daily, weekly, monthly; got 'hourly'",
        ),
        (
            {"time_utc": "24:00"},
            "invalid_time_utc",
            "time_utc must be a UTC time of day \"HH:MM\" (00:00 to 23:59); got '24:00'",
        ),
        (
            {"time_utc": "6:30"},
            "invalid_time_utc",
            "time_utc must be a UTC time of day \"HH:MM\" (00:00 to 23:59); got '6:30'",
        ),
        (
            {"frequency": "weekly"},
            "invalid_day_of_week",
            "day_of_week must be one of monday, tuesday, wednesday, thursday, friday, saturday, sunday (weekly schedules)",
        ),
        (
            {"day_of_week": "monday"},
            "invalid_day_of_week",
            "day_of_week must be omitted unless frequency is weekly; got 'monday'",
        ),
        (
            {"frequency": "monthly", "day_of_month": 29},
            "invalid_day_of_month",
            "day_of_month must be an integer from 1 to 28 (monthly schedules); got '29'",
        ),
        (
            {"frequency": "monthly", "day_of_month": True},
            "invalid_day_of_month",
            "day_of_month must be an integer from 1 to 28 (monthly schedules); got 'True'",
        ),
        (
            {"frequency": "monthly", "day_of_month": 21.5},
            "invalid_day_of_month",
            "day_of_month must be an integer from 1 to 28 (monthly schedules); got '21.5'",
        ),
        (
            {"frequency": "monthly", "day_of_month": "5"},
            "invalid_day_of_month",
            "day_of_month must be an integer from 1 to 28 (monthly schedules); got '5'",
        ),
        (
            {"recipients": []},
            "invalid_recipients",
            "recipients must be a list of 1 to 10 distinct email addresses; got '[]'",
        ),
        ({"recipients": [f"u{i}@acme.example" for i in range(11)]}, "invalid_recipients", None),
        (
            {"recipients": ["not-an-address"]},
            "invalid_recipients",
            "recipients must be a list of 1 to 10 distinct email addresses; got 'not-an-address'",
        ),
        ({"recipients": ["a@acme.example\r\nBcc: x@evil.example"]}, "invalid_recipients", None),
        (
            {"recipients": ["ops@acme.example", "OPS@acme.example"]},
            "invalid_recipients",
            "recipients must be a list of 1 to 10 distinct email addresses; got 'duplicate addresses'",
        ),
        ({"recipients": "ops@acme.example"}, "invalid_recipients", None),
        ({"format": "docx"}, "invalid_format", None),
        ({"type": "full"}, "invalid_type", None),
        ({"period": "0d"}, "invalid_period", None),
        ({"timezone": "CET"}, "invalid_body", None),
        # An optional field sent as null is not left out (no schema field is nullable).
        ({"period": ""}, "invalid_period", None),
        (
            {"period": None},
            "invalid_body",
            "body must be without null fields (leave a field out for its default); got 'period'",
        ),
        ({"type": None}, "invalid_body", None),
        ({"day_of_week": None}, "invalid_body", None),
    ],
)
def test_invalid_bodies_name_the_field(changes, code, message):
    got_code, got_message = rejected({**VALID, **changes})
    assert got_code == code
    if message is not None:
        assert got_message == message


@pytest.mark.parametrize(
    ("schedule", "after", "expected"),
    [
        (spec(), "2026-11-23T06:29:59", "2026-11-23T06:30:00"),
        (spec(), "2026-11-23T06:30:00", "2026-11-24T06:30:00"),  # strictly after
        (spec(time_utc="00:00"), "2026-12-31T23:59:00", "2027-01-01T00:00:00"),
        (spec("weekly", day_of_week="monday"), "2026-11-23T06:00:00", "2026-11-23T06:30:00"),
        (spec("weekly", day_of_week="monday"), "2026-11-23T07:00:00", "2026-11-30T06:30:00"),
        (spec("weekly", day_of_week="sunday"), "2026-11-23T07:00:00", "2026-11-29T06:30:00"),
        (spec("monthly", day_of_month=1), "2026-11-23T07:00:00", "2026-12-01T06:30:00"),
        (spec("monthly", day_of_month=28), "2026-12-28T06:30:00", "2027-01-28T06:30:00"),
        (spec("monthly", day_of_month=28), "2026-02-27T00:00:00", "2026-02-28T06:30:00"),
    ],
)
def test_next_run_examples(schedule, after, expected):
    moment = dt.datetime.fromisoformat(after).replace(tzinfo=UTC)
    assert next_run(schedule, moment) == dt.datetime.fromisoformat(expected).replace(tzinfo=UTC)


schedules = st.one_of(
    st.builds(spec, st.just("daily"), st.sampled_from(["00:00", "06:30", "23:59"])),
    st.builds(
        spec, st.just("weekly"), st.sampled_from(["00:00", "12:15"]), st.sampled_from(WEEKDAYS)
    ),
    st.builds(
        spec,
        st.just("monthly"),
        st.sampled_from(["00:00", "18:45"]),
        st.none(),
        st.integers(1, 28),
    ),
)
moments = st.datetimes(
    min_value=dt.datetime(2024, 1, 1), max_value=dt.datetime(2030, 12, 31), timezones=st.just(UTC)
)


@given(schedule=schedules, after=moments)
def test_next_run_is_the_first_matching_slot_after_the_moment(schedule, after):
    run = next_run(schedule, after)

    assert run > after
    assert run.strftime("%H:%M") == schedule.time_utc and run.second == 0
    if schedule.frequency == "daily":
        assert run - after <= dt.timedelta(days=1)
    elif schedule.frequency == "weekly":
        assert WEEKDAYS[run.weekday()] == schedule.day_of_week
        assert run - after <= dt.timedelta(days=7)
    else:
        assert run.day == schedule.day_of_month
        assert run - after <= dt.timedelta(days=31)
    # Nothing earlier would do: running again from just before gives the same slot.
    assert next_run(schedule, run - dt.timedelta(seconds=1)) == run


def test_items_round_trip_and_show_in_the_api_shape():
    now = dt.datetime(2026, 11, 23, 14, 5, 9, tzinfo=UTC)
    weekly = spec("weekly", day_of_week="friday")
    item = schedule_item(
        "acme", "01M84BK4G8XM54MK7HVAZ1VPP3", weekly, now, created_by="alice@acme.example"
    )

    assert item["due_shard"] == "due"
    assert item["next_run"] == "2026-11-27T06:30:00Z"
    assert spec_of(item) == weekly
    assert item["created_by"] == "alice@acme.example"
    assert schedule_view(item, {"ops@acme.example": "pending"}) == {
        "id": "01M84BK4G8XM54MK7HVAZ1VPP3",
        "type": "summary",
        "format": "pdf",
        "period": "30d",
        "frequency": "weekly",
        "time_utc": "06:30",
        "day_of_week": "friday",
        "day_of_month": None,
        "recipients": ["ops@acme.example"],
        "recipient_states": [{"address": "ops@acme.example", "state": "pending"}],
        "next_run": "2026-11-27T06:30:00Z",
        "created_at": "2026-11-23T14:05:09Z",
        "last_status": "scheduled",
        "last_error": None,
        "last_run_at": None,
        "last_report_id": None,
        "created_by": "alice@acme.example",
    }
