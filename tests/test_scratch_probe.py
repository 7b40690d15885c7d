"""The scratch probe counts a step's own file systems and nothing else (watch.ScratchMounts).

A step's private scratch is a fresh tmpfs at /tmp (or /var/tmp, /dev/shm) in the step's own
mount namespace. Until that is verified, the path /proc/PID/root/tmp may lead anywhere: to the
engine's own /tmp (the process is not isolated yet), to the host's /tmp seen from a namespace
whose view is not built yet, or to another process's root once the pid is reused. None of
those may ever be counted. Real processes in real mount namespaces (unshare needs root).
"""
from __future__ import annotations

import os
import subprocess
import time

import pytest

from darwin_git.run.watch import ScratchMounts

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mount namespaces need root")
MiB = 1 << 20


def _start(script: str) -> subprocess.Popen:
    proc = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                             script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc


def _stop(proc: subprocess.Popen) -> None:
    proc.kill()
    proc.wait()


def test_the_engine_s_own_namespace_counts_nothing():
    mounts = ScratchMounts(("/tmp", "/dev/shm"))
    assert mounts.usage(os.getpid()) == {}


def test_a_namespace_whose_view_is_not_built_counts_nothing():
    """Its /tmp and /dev/shm are still the host's (cloned mounts): never the step's."""
    proc = _start("echo ready; sleep 60")
    try:
        mounts = ScratchMounts(("/tmp", "/var/tmp", "/dev/shm"))
        assert mounts.usage(proc.pid) == {}
    finally:
        _stop(proc)


def test_a_gone_or_unknown_process_counts_nothing():
    mounts = ScratchMounts(("/tmp",))
    assert mounts.usage(2 ** 22 + 12345) == {}
    assert mounts.usage(None) == {}


def test_the_step_s_own_tmpfs_is_counted_and_stays_counted_after_it_exits():
    proc = _start("mount -t tmpfs -o size=16m tmpfs /tmp && "
                  "dd if=/dev/zero of=/tmp/x bs=1M count=3 2>/dev/null && echo ready && sleep 60")
    try:
        mounts = ScratchMounts(("/tmp", "/dev/shm"))
        used = mounts.usage(proc.pid)
        assert set(used) == {"/tmp"}  # its /dev/shm is the host's: not counted
        assert 3 * MiB <= used["/tmp"] < 4 * MiB
    finally:
        _stop(proc)
    # the process and its namespace are gone: the held folder still reads the same file system
    assert mounts.usage(proc.pid)["/tmp"] >= 3 * MiB
    mounts.close()
    assert mounts.usage(None) == {}


def test_a_reused_pid_does_not_move_the_count_to_another_file_system():
    """Once verified, the count follows the mount, never the path: a later look through the
    same pid (now another process, here the engine itself) changes nothing."""
    proc = _start("mount -t tmpfs -o size=8m tmpfs /tmp && echo ready && sleep 60")
    try:
        mounts = ScratchMounts(("/tmp",))
        assert mounts.usage(proc.pid) == {"/tmp": mounts.usage(None)["/tmp"]}
    finally:
        _stop(proc)
    time.sleep(0.1)
    assert mounts.usage(os.getpid())["/tmp"] < 1 * MiB
    mounts.close()
