"""Pure building blocks of the hourly aggregator (no AWS calls).

`handlers.aggregator` does the I/O; these modules decide what to ask AWS for
and what the answers mean: which hours a run covers (`hours`), who the tenants
are (`tenants`), the GetMetricData queries (`cloudwatch_queries`), hourly
samples and daily rollups (`rollups`), Cost Explorer parsing (`costs`) and
Security Hub scoring (`compliance`).
"""
