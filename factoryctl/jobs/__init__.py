"""The job executor: carries out the pure scheduler's decisions on the nodes, through their agents.

`scheduler/` decides what starts where; this package launches each gang's ranks on every allocated node at once
(all or nothing), watches them, kills and requeues a gang together when one rank fails, cancels, and reads rank
logs. `sched tick` runs one pass (`tick.run_tick`); the store keeps every job's record between passes.
"""
