"""The local stand-in for the report-jobs queue's event source mapping (SQS -> report engine)."""

from __future__ import annotations

import logging
import threading

import boto3

from local.config import REGION
from local.frontdoor import invoke

logger = logging.getLogger(__name__)


class ReportJobPoller:
    """Delivers deferred-report messages to the report engine, as Lambda's SQS mapping does.

    Messages the engine reports in `batchItemFailures` stay on the queue and
    come back after the visibility timeout; the rest are deleted.
    """

    def __init__(self, queue_url: str):
        self.queue_url = queue_url
        self.sqs = boto3.client("sqs", region_name=REGION)
        self.queue_arn = self.sqs.get_queue_attributes(
            QueueUrl=queue_url, AttributeNames=["QueueArn"]
        )["Attributes"]["QueueArn"]

    def poll_once(self, wait_seconds: int = 1) -> int:
        messages = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=wait_seconds,
            AttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            return 0
        event = {
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
                for message in messages
            ]
        }
        try:
            result = invoke("report-engine", event) or {}
        except Exception:
            logger.exception(
                "report engine failed on %d deferred reports; they will be retried", len(messages)
            )
            return 0
        failed = {item["itemIdentifier"] for item in result.get("batchItemFailures", [])}
        for message in messages:
            if message["MessageId"] not in failed:
                self.sqs.delete_message(
                    QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"]
                )
        return len(messages) - len(failed)

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.poll_once()
            except Exception:
                logger.exception("polling the report-jobs queue failed")
                stop.wait(1)
