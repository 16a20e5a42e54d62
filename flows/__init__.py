"""Prefect flows, one per stage. A stage run as `python -m flows.<stage>` first imports torch,
Prefect, MLflow and torchmetrics: about a million objects, which the cyclic garbage collector would
walk again and again while they load (a quarter of the import time). It is paused here, while
`python -m` loads the package, and `flows.runtime.cli.main` freezes what was loaded and resumes it."""

import gc
import sys

if sys.argv[:1] == ["-m"]:  # set so only while `python -m flows.<module>` locates its module
    gc.disable()
