"""Child processes: saying how one ended, and stopping one that may not listen.

Both the run executor's per-run children (``optimize``) and ``policy tune``'s trial workers
report a child that died in the same words, and stop one the same way: terminate, then kill.
"""

from __future__ import annotations

import signal
from multiprocessing.process import BaseProcess


def how_it_ended(process: BaseProcess, grace: float) -> str:
    """How ``process`` ended, after waiting up to ``grace`` seconds for it: "was killed by
    SIGKILL (out of memory?)", "exited with code 1"."""
    process.join(grace)
    code = process.exitcode
    if code is not None and code < 0:
        how = f"was killed by {signal.Signals(-code).name}"
        if -code == signal.SIGKILL:
            how += " (out of memory?)"
        return how
    return f"exited with code {code}"


def stop(process: BaseProcess, grace: float) -> None:
    """SIGTERM ``process``, then SIGKILL it if it is still alive ``grace`` seconds later."""
    if process.is_alive():
        process.terminate()
        process.join(grace)
    if process.is_alive():
        process.kill()
        process.join(grace)
