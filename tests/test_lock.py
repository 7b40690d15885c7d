import os
import subprocess
import sys

import pytest

from darwin_git.lock import LockBusy, RunLock


def test_second_holder_is_refused_with_the_holders_name(tmp_path):
    path = tmp_path / "state" / "evolve.lock"
    with RunLock(path):
        with pytest.raises(LockBusy) as err:
            RunLock(path).acquire()
        assert f"pid {os.getpid()}" in str(err.value)
    RunLock(path).acquire().release()  # free again once released


def test_lock_of_a_killed_process_frees_itself(tmp_path):
    path = tmp_path / "evolve.lock"
    code = ("import sys, time; from darwin_git.lock import RunLock; "
            f"RunLock({str(path)!r}).acquire(); print('held', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    with pytest.raises(LockBusy):
        RunLock(path).acquire()
    proc.kill()
    proc.wait()
    RunLock(path).acquire().release()
