"""Where reports live: the reports table (metadata) and the reports bucket (files).

A report item is keyed by (customer_id, report_id); ids sort by creation
time, so a reverse Query lists a tenant's reports newest first. Files are
stored at `{customer_id}/{report_id}.{ext}`, encrypted (SSE-KMS with the
configured key, else SSE-S3), with the content type and a download filename,
and handed out only as presigned GET URLs that expire within the hour.

Files expire through the bucket's lifecycle rule `reportRetentionDays` after
they were written; a report item carries a DynamoDB TTL (`ttl`, epoch
seconds) that ends no later than its file (`expiry_time`). DynamoDB deletes
expired items lazily, typically within a few days, and until then reads still
return them, so readers check `is_expired` themselves: an expired report is
left out of the list and answers 410 (AWS: "Working with expired items and
time to live", https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ttl-expired-items.html,
and "How TTL works", https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/howitworks-ttl.html).
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from handlers.shared.dynamo import deserialize, serialize
from handlers.shared.http import bad_request
from handlers.shared.reports.ids import is_valid_id
from handlers.shared.reports.model import CONTENT_TYPES
from handlers.shared.reports.times import iso_utc

PENDING = "pending"
READY = "ready"
FAILED = "failed"

MAX_URL_EXPIRY_SECONDS = 3600
MULTIPART_THRESHOLD_BYTES = 8 * 1024 * 1024
MAX_ERROR_LENGTH = 500
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100


@dataclass(frozen=True)
class ReportRecord:
    customer_id: str
    report_id: str
    report_type: str
    format: str
    period: str
    status: str
    created_at: str  # ISO-8601 UTC
    s3_key: str
    filename: str
    completed_at: str | None = None
    size_bytes: int | None = None
    rows: int | None = None
    error: str | None = None
    schedule_id: str | None = None  # set for scheduled reports
    ttl: int | None = None  # epoch seconds; see expiry_time
    created_by: str | None = None  # the `sub` of the token that requested it

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.format]

    def item(self) -> dict[str, Any]:
        item = {
            "customer_id": self.customer_id,
            "report_id": self.report_id,
            "type": self.report_type,
            "format": self.format,
            "period": self.period,
            "status": self.status,
            "created_at": self.created_at,
            "s3_key": self.s3_key,
            "filename": self.filename,
            "completed_at": self.completed_at,
            "size_bytes": self.size_bytes,
            "rows": self.rows,
            "error": self.error,
            "schedule_id": self.schedule_id,
            "ttl": self.ttl,
            "created_by": self.created_by,
        }
        return {key: value for key, value in item.items() if value is not None}

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> ReportRecord:
        def optional_int(name: str) -> int | None:
            return int(item[name]) if item.get(name) is not None else None

        return cls(
            customer_id=str(item["customer_id"]),
            report_id=str(item["report_id"]),
            report_type=str(item["type"]),
            format=str(item["format"]),
            period=str(item["period"]),
            status=str(item["status"]),
            created_at=str(item["created_at"]),
            s3_key=str(item["s3_key"]),
            filename=str(item["filename"]),
            completed_at=item.get("completed_at"),
            size_bytes=optional_int("size_bytes"),
            rows=optional_int("rows"),
            error=item.get("error"),
            schedule_id=item.get("schedule_id"),
            ttl=optional_int("ttl"),
            created_by=item.get("created_by"),
        )

    def is_expired(self, now: dt.datetime) -> bool:
        """Whether the report's TTL has passed: its file is gone, or about to go.

        DynamoDB treats an item as expired once its TTL is at or before the
        current time, so a report expires at the TTL's very second.
        """
        return self.ttl is not None and self.ttl <= now.timestamp()

    def view(self, url: str | None, expires_at: str | None) -> dict[str, Any]:
        """The report as the API shows it."""
        return {
            "id": self.report_id,
            "type": self.report_type,
            "format": self.format,
            "period": self.period,
            "status": self.status,
            "filename": self.filename,
            "size_bytes": self.size_bytes,
            "rows": self.rows,
            "created_at": self.created_at,
            "completed_at": self.completed_at,
            "url": url,
            "expires_at": expires_at,
            "error": self.error,
            "created_by": self.created_by,
        }


def new_record(
    tenant: str,
    report_id: str,
    report_type: str,
    fmt: str,
    period: str,
    now: dt.datetime,
    schedule_id: str | None = None,
    *,
    retention_days: int,
    created_by: str | None = None,
) -> ReportRecord:
    """A pending report: its object key, the filename a download is saved as, its TTL."""
    return ReportRecord(
        customer_id=tenant,
        report_id=report_id,
        report_type=report_type,
        format=fmt,
        period=period,
        status=PENDING,
        created_at=iso_utc(now),
        s3_key=f"{tenant}/{report_id}.{fmt}",
        filename=f"securebase-{tenant}-{report_type}-{period}-{now.date().isoformat()}.{fmt}",
        schedule_id=schedule_id,
        ttl=int(expiry_time(now, retention_days).timestamp()),
        created_by=created_by,
    )


def expiry_time(created: dt.datetime, retention_days: int) -> dt.datetime:
    """When a report created at `created` expires: no later than its file.

    S3 expires an object "by adding the number of days specified in the rule
    to the object creation time and rounding the resulting time to the next
    day midnight UTC" (S3 User Guide, "Lifecycle configuration elements",
    https://docs.aws.amazon.com/AmazonS3/latest/userguide/intro-lifecycle-rules.html).
    The file is written after the record is created, so the same rule applied
    to the record's creation time never ends after the file does.
    """
    end = created.astimezone(dt.UTC) + dt.timedelta(days=retention_days)
    midnight = dt.datetime.combine(end.date(), dt.time(), tzinfo=dt.UTC)
    return midnight if end == midnight else midnight + dt.timedelta(days=1)


def page_start(raw: str | None) -> str | None:
    """`next`: a report id, the `next` of the previous page (None: the first page);
    else ApiError(400)."""
    if raw is not None and not is_valid_id(raw):
        raise bad_request("next", "a report id: the `next` value of the previous page", raw)
    return raw


def page_size(raw: str | None) -> int:
    """`limit`: an integer from 1 to MAX_PAGE_SIZE (None: the default); else ApiError(400)."""
    if raw is None:
        return DEFAULT_PAGE_SIZE
    # isdigit() alone accepts digits int() rejects, such as '²'; an empty value is no integer.
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_PAGE_SIZE:
        raise bad_request("limit", f"an integer from 1 to {MAX_PAGE_SIZE}", raw)
    return int(raw)


def _failed(record: ReportRecord, error: str, now: dt.datetime) -> ReportRecord:
    return replace(record, status=FAILED, error=error[:MAX_ERROR_LENGTH], completed_at=iso_utc(now))


def _failure_updates(failed: ReportRecord) -> dict[str, Any]:
    return {"status": FAILED, "error": failed.error, "completed_at": failed.completed_at}


class ReportsTable:
    def __init__(self, client: Any, table_name: str):
        self.client = client
        self.table_name = table_name

    def create(self, record: ReportRecord) -> bool:
        """Stores a new report; False when the id is already taken (a concurrent retry)."""
        try:
            self.client.put_item(
                TableName=self.table_name,
                Item=serialize(record.item()),
                ConditionExpression="attribute_not_exists(report_id)",
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def delete_pending(self, record: ReportRecord) -> None:
        """Removes a report that never left `pending` (one refused before it was queued)."""
        # ConditionalCheckFailed: a concurrent retry with the same Idempotency-Key
        # finished it meanwhile; it stays.
        with contextlib.suppress(self.client.exceptions.ConditionalCheckFailedException):
            self.client.delete_item(
                TableName=self.table_name,
                Key=serialize({"customer_id": record.customer_id, "report_id": record.report_id}),
                ConditionExpression="#status = :pending",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues=serialize({":pending": PENDING}),
            )

    def get(self, tenant: str, report_id: str) -> ReportRecord | None:
        """The tenant's report; None for unknown ids and other tenants' reports alike."""
        if not is_valid_id(report_id):
            return None
        response = self.client.get_item(
            TableName=self.table_name,
            Key=serialize({"customer_id": tenant, "report_id": report_id}),
            ConsistentRead=True,
        )
        item = response.get("Item")
        return ReportRecord.from_item(deserialize(item)) if item else None

    def page(
        self, tenant: str, limit: int, after: str | None, now: dt.datetime
    ) -> tuple[list[ReportRecord], str | None]:
        """One page of the tenant's unexpired reports, newest first, starting after the
        report id `after` (None: with the newest), and the `next` value: the id of the
        last report the page's Query evaluated, or None on the last page.

        Ids sort by creation time, so any id is a position in the tenant's list, whether
        or not it names one of its reports: the key is always the caller's partition,
        and a Query's ExclusiveStartKey is a position, not an item that must exist.

        Expired items that TTL has not deleted yet are filtered out, as AWS
        advises ("Working with expired items", see the module docstring).
        DynamoDB applies `Limit` before the filter, so a page may hold fewer
        than `limit` reports and still have a next page.
        """
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "customer_id = :tenant",
            "FilterExpression": "attribute_not_exists(#ttl) OR #ttl > :now",
            "ExpressionAttributeNames": {"#ttl": "ttl"},
            "ExpressionAttributeValues": serialize(
                {":tenant": tenant, ":now": int(now.timestamp())}
            ),
            "ScanIndexForward": False,
            "Limit": limit,
        }
        if after is not None:
            request["ExclusiveStartKey"] = serialize({"customer_id": tenant, "report_id": after})
        response = self.client.query(**request)
        records = [ReportRecord.from_item(deserialize(item)) for item in response.get("Items", [])]
        last_key = response.get("LastEvaluatedKey")
        return records, deserialize(last_key)["report_id"] if last_key else None

    def _finish(
        self,
        record: ReportRecord,
        updates: Mapping[str, Any],
        remove: tuple[str, ...] = (),
        expected_status: str | None = None,
    ) -> None:
        """Updates an existing report (and only in `expected_status`, when given)."""
        expression = "SET " + ", ".join(f"#{name} = :{name}" for name in updates)
        if remove:
            expression += " REMOVE " + ", ".join(f"#{name}" for name in remove)
        names = {f"#{name}": name for name in (*updates, *remove)}
        values = {f":{name}": value for name, value in updates.items()}
        condition = "attribute_exists(report_id)"
        if expected_status is not None:
            condition = "#status = :expected_status"
            names["#status"] = "status"
            values[":expected_status"] = expected_status
        self.client.update_item(
            TableName=self.table_name,
            Key=serialize({"customer_id": record.customer_id, "report_id": record.report_id}),
            UpdateExpression=expression,
            ConditionExpression=condition,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=serialize(values),
        )

    def mark_ready(
        self, record: ReportRecord, size_bytes: int, rows: int, now: dt.datetime
    ) -> ReportRecord:
        ready = replace(
            record,
            status=READY,
            size_bytes=size_bytes,
            rows=rows,
            completed_at=iso_utc(now),
            error=None,
        )
        self._finish(
            record,
            {
                "status": READY,
                "size_bytes": size_bytes,
                "rows": rows,
                "completed_at": ready.completed_at,
            },
            remove=("error",),
        )
        return ready

    def mark_failed(self, record: ReportRecord, error: str, now: dt.datetime) -> ReportRecord:
        failed = _failed(record, error, now)
        self._finish(record, _failure_updates(failed))
        return failed

    def fail_pending(
        self, record: ReportRecord, error: str, now: dt.datetime
    ) -> ReportRecord | None:
        """Marks the report failed if it is still pending; None when it no longer is."""
        failed = _failed(record, error, now)
        try:
            self._finish(record, _failure_updates(failed), expected_status=PENDING)
        except self.client.exceptions.ConditionalCheckFailedException:
            return None  # finished (or failed) meanwhile
        return failed


class ReportObjects:
    """The reports bucket: uploads and presigned downloads."""

    def __init__(self, client: Any, bucket: str, kms_key_arn: str | None, url_expiry_seconds: int):
        self.client = client
        self.bucket = bucket
        self.kms_key_arn = kms_key_arn
        self.url_expiry_seconds = max(1, min(url_expiry_seconds, MAX_URL_EXPIRY_SECONDS))

    def upload_arguments(self, record: ReportRecord) -> dict[str, str]:
        arguments = {
            "ContentType": record.content_type,
            "ContentDisposition": f'attachment; filename="{record.filename}"',
        }
        if self.kms_key_arn:
            arguments.update(ServerSideEncryption="aws:kms", SSEKMSKeyId=self.kms_key_arn)
        else:
            arguments["ServerSideEncryption"] = "AES256"
        return arguments

    def upload(self, path: Path, record: ReportRecord) -> None:
        """Uploads the file, in parts when it is large (retried part by part)."""
        from boto3.s3.transfer import TransferConfig

        self.client.upload_file(
            str(path),
            self.bucket,
            record.s3_key,
            ExtraArgs=self.upload_arguments(record),
            Config=TransferConfig(
                multipart_threshold=MULTIPART_THRESHOLD_BYTES,
                multipart_chunksize=MULTIPART_THRESHOLD_BYTES,
            ),
        )

    def download_url(self, record: ReportRecord, now: dt.datetime) -> tuple[str, str]:
        """A fresh presigned GET URL and when it expires (ISO-8601 UTC)."""
        url = self.client.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.bucket, "Key": record.s3_key},
            ExpiresIn=self.url_expiry_seconds,
        )
        return url, iso_utc(now + dt.timedelta(seconds=self.url_expiry_seconds))
