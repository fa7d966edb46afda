"""The local stand-in for the aggregator's shard queue: shards run in this process.

In AWS the coordinator sends each shard to the shard queue and the shard
function's event source mapping delivers it. Locally the coordinator hands
the shards to `InProcessShards`, which gives each one to the real shard code
(`handlers.aggregator_shard.process`) as the SQS record Lambda would, one
after another. There is one delivery per shard: a shard that fails is
recorded as failed at once, as on its last attempt in AWS.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Sequence

from handlers.aggregator_shard import Processed, process
from handlers.shared.aggregation.shards import TENANTS_PER_QUERY_BATCH, ShardTask
from handlers.shared.aggregator.runtime import Clients, Settings, Sharding, ShardSettings


def sharded(settings: Settings) -> Settings:
    """`settings` with every roster sharded (the local one fits one GetMetricData batch)."""
    return dataclasses.replace(
        settings,
        sharding=Sharding(
            queue_url="in-process", threshold=1, tenants_per_shard=TENANTS_PER_QUERY_BATCH
        ),
    )


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class InProcessShards:
    """A `Dispatcher` that runs every shard right away; `processed` keeps what they came to."""

    def __init__(
        self,
        settings: ShardSettings,
        clients: Clients,
        clock: Callable[[], dt.datetime] = _utc_now,
    ):
        self.settings = dataclasses.replace(settings, max_attempts=1)
        self.clients = clients
        self.clock = clock
        self.processed: list[Processed] = []

    def dispatch(self, tasks: Sequence[ShardTask]) -> None:
        for task in tasks:
            record = {
                "messageId": f"{task.run_id}/{task.shard_id}",
                "body": task.to_message(),
                "attributes": {"ApproximateReceiveCount": "1"},
                "eventSource": "aws:sqs",
            }
            self.processed.append(
                process(
                    [record],
                    now=dt.datetime.now(dt.UTC),
                    settings=self.settings,
                    clients=self.clients,
                )
            )
