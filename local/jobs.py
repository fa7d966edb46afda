"""The local stand-in for the report-jobs queue's event source mapping (SQS -> report engine).

Deployed, the report-jobs queue is an SQS fair queue: every job carries its
tenant as the `MessageGroupId` (handlers.shared.reports.jobs): "When fair
queues detect that one tenant is using a disproportionate share of the
queue's consumer capacity, they prioritize delivery of messages from quiet
tenants" (Amazon SQS Developer Guide, "How Amazon SQS fair queues work",
https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-fair-queues-detailed.html:
"Each message without a MessageGroupId is treated as belonging to its own
distinct tenant"). moto's queue hands messages out in the order they were
sent, so this poller does the fair part itself: it keeps the messages it has
received in one queue per tenant and gives the engine one message at a time,
from the tenant it served least recently, receiving again between jobs. A
tenant whose report arrives behind another tenant's backlog waits for at most
the job in progress and one job of every other waiting tenant.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import boto3

from local.config import REGION
from local.frontdoor import invoke

logger = logging.getLogger(__name__)

# `POST /_local/report-jobs/pause` (local.actions): jobs stay queued until
# `/resume`, so a test can see what is pending at a moment of its choosing.
_PAUSED = threading.Event()
_IDLE = threading.Event()  # no job is being received or delivered
_IDLE.set()
_SWITCH = threading.Lock()


def pause() -> None:
    """Stops handing out jobs; returns once the job in progress (if any) is done."""
    with _SWITCH:
        _PAUSED.set()
    _IDLE.wait()


def resume() -> None:
    _PAUSED.clear()


def is_paused() -> bool:
    return _PAUSED.is_set()


# `GET /_local/report-jobs`: the report ids the engine was given, in order
# (the most recent ones), so a test can check whose job went first.
_DELIVERED: deque[str] = deque(maxlen=1000)


def delivered() -> list[str]:
    return list(_DELIVERED)


def _report_id(message: Mapping[str, Any]) -> str:
    try:
        return str(json.loads(message["Body"])["report_id"])
    except (ValueError, TypeError, KeyError):
        return ""  # malformed: the engine drops it


@dataclass
class _Received:
    message: dict[str, Any]
    visible_again_at: float  # time.monotonic() when SQS would deliver it again


@dataclass
class _Buffer:
    """Received messages not yet given to the engine, one queue per tenant."""

    by_tenant: dict[str, deque[_Received]] = field(default_factory=dict)
    served: dict[str, int] = field(default_factory=dict)  # tenant -> turn it was last served
    turn: int = 0
    ids: set[str] = field(default_factory=set)

    def add(self, tenant: str, received: _Received) -> None:
        if received.message["MessageId"] in self.ids:
            return  # delivered again while waiting here: the copy we hold will do
        self.ids.add(received.message["MessageId"])
        self.by_tenant.setdefault(tenant, deque()).append(received)

    def next(self) -> _Received | None:
        """The oldest message of the waiting tenant served least recently (never: first)."""
        waiting = [tenant for tenant, messages in self.by_tenant.items() if messages]
        if not waiting:
            return None
        tenant = min(waiting, key=lambda t: self.served.get(t, -1))
        self.turn += 1
        self.served[tenant] = self.turn
        received = self.by_tenant[tenant].popleft()
        if not self.by_tenant[tenant]:
            del self.by_tenant[tenant]
        self.ids.discard(received.message["MessageId"])
        return received

    def __iter__(self) -> Iterator[_Received]:
        return (received for messages in self.by_tenant.values() for received in messages)


def tenant_of(message: Mapping[str, Any]) -> str:
    group = message.get("Attributes", {}).get("MessageGroupId")
    return f"group:{group}" if group else f"message:{message['MessageId']}"


class ReportJobPoller:
    """Delivers deferred-report messages to the report engine, fairly between tenants.

    Messages the engine reports in `batchItemFailures` (or all of them, when
    it crashes) stay on the queue and come back after the visibility timeout;
    the rest are deleted, as Lambda's SQS mapping does. Messages waiting here
    for their turn are kept invisible on the queue meanwhile.
    """

    def __init__(self, queue_url: str):
        self.queue_url = queue_url
        self.sqs = boto3.client("sqs", region_name=REGION)
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=queue_url, AttributeNames=["QueueArn", "VisibilityTimeout"]
        )["Attributes"]
        self.queue_arn = attributes["QueueArn"]
        self.visibility_seconds = int(attributes.get("VisibilityTimeout", "30"))
        self._buffer = _Buffer()

    def receive(self, wait_seconds: int = 0) -> int:
        """Adds what the queue has to the buffer; returns how many messages came."""
        messages = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=wait_seconds,
            AttributeNames=["All"],
        ).get("Messages", [])
        now = time.monotonic()
        for message in messages:
            self._buffer.add(tenant_of(message), _Received(message, now + self.visibility_seconds))
        return len(messages)

    def _keep_waiting_messages_invisible(self) -> None:
        now = time.monotonic()
        for received in self._buffer:
            if received.visible_again_at - now < self.visibility_seconds / 2:
                self.sqs.change_message_visibility(
                    QueueUrl=self.queue_url,
                    ReceiptHandle=received.message["ReceiptHandle"],
                    VisibilityTimeout=self.visibility_seconds,
                )
                received.visible_again_at = now + self.visibility_seconds

    def _event(self, message: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "Records": [
                {
                    "messageId": message["MessageId"],
                    "receiptHandle": message["ReceiptHandle"],
                    "body": message["Body"],
                    "attributes": message.get("Attributes", {}),
                    "messageAttributes": {},
                    "md5OfBody": message["MD5OfBody"],
                    "eventSource": "aws:sqs",
                    "eventSourceARN": self.queue_arn,
                    "awsRegion": REGION,
                }
            ]
        }

    def deliver_next(self) -> bool | None:
        """Gives the engine the fairest waiting message: True if it finished it,
        False if it failed (the message stays on the queue), None if none waits."""
        self._keep_waiting_messages_invisible()
        received = self._buffer.next()
        if received is None:
            return None
        message = received.message
        _DELIVERED.append(_report_id(message))
        try:
            result = invoke("report-engine", self._event(message)) or {}
        except Exception:
            logger.exception("report engine failed on a deferred report; it will be retried")
            return False
        failed = {item["itemIdentifier"] for item in result.get("batchItemFailures", [])}
        if message["MessageId"] in failed:
            return False
        self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        return True

    def poll_once(self, wait_seconds: int = 1) -> int:
        """Receives (waiting only when nothing is buffered), then delivers one message;
        returns 1 when the engine finished it."""
        self.receive(0 if any(True for _ in self._buffer) else wait_seconds)
        return 1 if self.deliver_next() else 0

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            with _SWITCH:
                paused = _PAUSED.is_set()
                if not paused:
                    _IDLE.clear()
            if paused:
                stop.wait(0.2)
                continue
            try:
                self.poll_once()
            except Exception:
                logger.exception("polling the report-jobs queue failed")
                stop.wait(1)
            finally:
                _IDLE.set()
