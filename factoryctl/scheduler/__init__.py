"""The gang scheduler: pure functions from (nodes, queue, running jobs, now, price) to decisions.

No IO happens here (an import-linter contract keeps SSH, NVML and UI libraries out): the job executor applies the
decisions, and `sched simulate` replays traces through exactly the same pass (`core.plan`).
"""
