"""mlopsctl: declarative, GitOps-style pipeline-as-code for machine learning."""

import time as _time

__version__ = "0.1.0"

#: when this process imported mlopsctl: a source file changed after it is not the code running
#: here (a dask worker that outlived an upgrade; see execute/dask_executor.py, code_state)
IMPORTED_AT = _time.time()
