"""Which job holds a GPU, as the node screen says it: in its GPU table's Job column and in the GPU's detail.

nvitop users see a GPU's processes; an operator of a gang scheduler asks which job they belong to, as `factoryctl
gpus -o wide`'s JOB and Slurm's `squeue -w` answer it. The snapshot carries it (`FactorySnapshot.gpu_job`, read
from the store's running jobs by the live services); here it is only drawn. A GPU no job holds reads `none`; one
the snapshot cannot tell about (the store was not read) reads `unknown`, never `none`: a free GPU invites a job.
"""

from __future__ import annotations

from rich.text import Text

from factoryctl.live.services import GpuJob
from factoryctl.tui.renderables.palette import tone

#: A GPU no job holds (the Throttled column's word for "none of them").
NO_JOB = "none"
#: A GPU whose holder the snapshot does not know: no store was read.
UNKNOWN_JOB = "unknown"


def job_cell(job: GpuJob) -> Text:
    """The GPU table's Job cell: the job's id, `none`, or `unknown` in the grey of `n/a` (a value not known)."""
    if job.unknown_why is not None:
        return Text(UNKNOWN_JOB, style=tone("secondary"), no_wrap=True)
    return Text(job.job_id or NO_JOB, no_wrap=True)


def job_words(job: GpuJob) -> Text:
    """The detail's job line: the cell's words, and why it is unknown when it is."""
    shown = job_cell(job)
    if job.unknown_why is not None:
        shown.append(f" ({job.unknown_why})")
    return shown
