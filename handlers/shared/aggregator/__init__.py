"""The aggregator's AWS side, shared by its two functions (coordinator and shard).

`runtime` holds the settings from the environment, the clients and paging;
`usage` reads GetMetricData and writes samples and rollups for a list of
tenants; `ledger` records a sharded run's progress in the metrics table and
completes the run when its last participant reports. The decisions they act
on are pure and live in `handlers.shared.aggregation`.
"""
