"""The Phase 2 monitor's pure parts: config, metric queries, evaluation, rendering.

Nothing here calls AWS; `handlers.phase2_monitor` does the I/O (one
GetMetricData call, DescribeAlarms, S3, SNS) around these modules.
"""
