"""Reports: what they contain, how they are rendered, stored, scheduled and delivered.

- `model`: report data (summary figures, per-day totals, streamed detail rows);
  `builder` reads it from the metrics table through the analytics core;
- `render` and `render_{csv,json,xlsx,pdf}`: pure renderers, report data in,
  file out (ReportLab and openpyxl are imported only when used);
- `store`: the reports table and the reports bucket; `idempotency`: retried
  POSTs; `jobs`: the deferred-report queue; `service`: one report end to end;
- `schedules` (pure validation and next run) and `schedule_store`.
- `synthetic`: deterministic data of any size, for tests and benchmarks.
"""
