"""`make bench`: the figures the service exists for, measured and written to bench/results/.

One module per area (aggregator, query, reports, imports, artifacts, local_api,
monitor, pulumi_program), each with a `measure` returning its section of the
results; `bench.run` runs them, prints the table and writes the JSON.
"""
