"""`make policy`: the CrossGuard pack over each stack's program under mocks, as the engine runs it.

`engine` drives pulumi_policy's analyzer with the engine's messages, `sources`
finds where the program declares each resource, `findings` puts the two
together, `sarif` writes them for code scanning; `python -m policy_check` is the command.
"""
