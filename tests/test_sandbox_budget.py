"""The compute clock and the per-run limits, on both runners, with real processes.

The sandbox measures a step's clock itself (CPU time of its whole process tree from the
kernel, or wall time since its first process) and stops it once the clock passes its budget;
memory, processes and bytes written are limited over the whole run, not per process. No test
asserts an absolute duration: budgets are CPU seconds the step must burn, and CPU counts are
compared with each other.
"""
from __future__ import annotations

import os

import pytest

from darwin_git.run.base import ClockLimit, Limits
from sandboxes import RUNNERS, make_sandbox, script_step

MiB = 1 << 20
# The parent sleeps; a double-forked, setsid()-ed grandchild burns the CPU.
DETACHED_BURNER = """
    import os, time
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            while True:
                pass
        os._exit(0)
    while True:
        time.sleep(1)
"""


@pytest.fixture(params=RUNNERS)
def sandbox(request):
    return make_sandbox(request.param)


def test_a_step_that_ignores_its_cpu_budget_is_stopped(sandbox, tmp_path):
    out = sandbox.run(script_step(tmp_path, """
        print("spinning", flush=True)
        while True:
            pass
    """, clock_limit=ClockLimit("cpu", 1.0)))
    assert out.over_budget and not out.timed_out and out.returncode is None, out.log_tail
    assert out.cpu_s >= 1.0 and out.cpu_source == "cgroup"
    assert out.log_tail.startswith("spinning") and "budget (cpu clock)" in out.log_tail


def test_the_cpu_clock_counts_a_detached_child(sandbox, tmp_path):
    """The parent sleeps; a double-forked, setsid()-ed grandchild burns the budget."""
    out = sandbox.run(script_step(tmp_path, DETACHED_BURNER, clock_limit=ClockLimit("cpu", 1.0)))
    assert out.over_budget and out.returncode is None, out.log_tail
    assert out.cpu_s >= 1.0


def test_the_wall_clock_budget_stops_a_step_that_only_waits(sandbox, tmp_path):
    out = sandbox.run(script_step(tmp_path, """
        import time
        while True:
            time.sleep(1)
    """, clock_limit=ClockLimit("wall", 1.0)))
    assert out.over_budget and not out.timed_out and out.returncode is None
    assert "budget (wall clock)" in out.log_tail


def test_cpu_s_is_the_work_of_every_process(sandbox, tmp_path):
    """Three processes each burn 0.4 s of their own CPU time and say so; the sandbox's count
    (which also holds the interpreter's start) is close to the sum, never below it."""
    out = sandbox.run(script_step(tmp_path, """
        import os, time
        def burn():
            while time.process_time() < 0.4:
                pass
            print("burnt", time.process_time(), flush=True)
        kids = []
        for _ in range(2):
            pid = os.fork()
            if pid == 0:
                burn()
                os._exit(0)
            kids.append(pid)
        burn()
        for pid in kids:
            os.waitpid(pid, 0)
    """))
    assert out.returncode == 0 and not out.over_budget, out.log_tail
    reported = sum(float(line.split()[1]) for line in out.log_tail.splitlines()
                   if line.startswith("burnt"))
    assert out.log_tail.count("burnt") == 3
    assert 0.6 < reported / out.cpu_s <= 1.02, (reported, out.cpu_s)


def test_an_interactive_step_reports_its_cpu_time(sandbox, tmp_path):
    step = script_step(tmp_path, """
        import sys, time
        while time.process_time() < 0.2:
            pass
        sys.stdout.write(sys.stdin.read().upper())
    """)
    server = sandbox.open(step)
    server.stdin.write(b"hello")
    server.stdin.close()
    assert server.stdout.read() == b"HELLO"
    outcome = server.close()
    assert outcome.returncode == 0 and outcome.cpu_source == "cgroup"
    assert outcome.cpu_s >= 0.2


def test_memory_is_limited_over_all_processes_of_a_run(sandbox, tmp_path):
    """Four children of 160 MiB each: every one fits the limit, together they do not."""
    out = sandbox.run(script_step(tmp_path, """
        import os, time
        for _ in range(4):
            if os.fork() == 0:
                block = bytearray(160 << 20)
                for i in range(0, len(block), 4096):
                    block[i] = 1  # touched, so resident
                print("child holds 160 MiB", flush=True)
                time.sleep(600)
        time.sleep(600)
    """, limits=Limits(memory_bytes=384 * MiB)))
    assert out.limit == "memory" and out.oom and out.returncode is None, out.log_tail
    assert not out.timed_out and "OOM killer" in out.log_tail


def test_many_files_under_the_per_file_cap_hit_the_run_s_disk_cap(sandbox, tmp_path):
    out = sandbox.run(script_step(tmp_path, """
        import os
        out, i = os.environ["DARWIN_OUT"], 0
        block = os.urandom(1 << 20)
        while True:
            with open(f"{out}/part-{i}", "wb") as f:
                for _ in range(2):
                    f.write(block)
            i += 1
    """, limits=Limits(out_bytes=32 * MiB, max_file_bytes=4 * MiB)))
    assert out.limit == "disk" and out.returncode is None and not out.timed_out, out.log_tail
    assert "a run may write" in out.log_tail
    assert "in its output folder" in out.stopped, out.stopped  # where it was read


def test_private_scratch_counts_toward_the_disk_cap(sandbox, tmp_path):
    out = sandbox.run(script_step(tmp_path, """
        import os, time
        block = os.urandom(1 << 20)
        for i in range(48):
            with open(f"/tmp/part-{i}", "wb") as f:
                f.write(block)
        print("wrote 48 MiB to /tmp", flush=True)
        time.sleep(600)
    """, limits=Limits(out_bytes=32 * MiB, max_file_bytes=4 * MiB)))
    assert out.limit == "disk" and out.returncode is None and not out.timed_out, out.log_tail
    assert "on its scratch tmpfs /tmp" in out.stopped, out.stopped
    used = int(out.stopped.split("wrote ")[1].split()[0])
    assert 32 * MiB < used < 64 * MiB, out.stopped  # the step's own 48 MiB, never the host's


def test_steps_that_write_nothing_are_never_killed_for_disk(sandbox, tmp_path):
    """The host's own folders (its / holds far more than the cap) never count: a step is
    looked at from its very start to its end, and its scratch is counted only once verified."""
    for i in range(3):
        out = sandbox.run(script_step(tmp_path / str(i), """
            import os, time
            t = time.time()
            while time.time() - t < 0.5:
                os.listdir("/tmp")
        """, limits=Limits(out_bytes=1 * MiB)))
        assert out.limit is None and out.returncode == 0, out.log_tail


def test_a_fork_bomb_ends_the_step_at_the_process_limit(sandbox, tmp_path):
    out = sandbox.run(script_step(tmp_path, """
        import os, time
        while True:
            try:
                if os.fork() == 0:
                    time.sleep(600)
                    os._exit(0)
            except OSError:
                time.sleep(600)
    """, limits=Limits(max_procs=24)))
    assert out.limit == "pids" and out.returncode is None and not out.timed_out, out.log_tail


TORCH_STEP = """
import os, sys, time
if sys.argv[2] == "spin":  # what the step's own code could do: wait actively
    os.environ.update(OMP_WAIT_POLICY="ACTIVE", KMP_BLOCKTIME="infinite")
    os.environ.pop("GOMP_SPINCOUNT", None)
import torch
torch.set_num_threads(int(sys.argv[1]))
a = torch.randn(256, 256)
for _ in range(20):
    (a @ a).sum()  # the OpenMP pool's threads exist and have worked
# The serial part of a step: the main thread sleeps, the pool's threads wait. What they spend
# meanwhile is this process's CPU time over the window (the main thread spends none).
t0, c0 = time.monotonic(), time.process_time()
while time.monotonic() - t0 < 1.0 or (sys.argv[2] == "spin" and time.process_time() - c0 < 0.3
                                      and time.monotonic() - t0 < 120):
    time.sleep(0.05)
print("threads", torch.get_num_threads(), os.environ["OMP_WAIT_POLICY"],
      "waiting_cpu", round(time.process_time() - c0, 3))
"""


def test_waiting_threads_do_not_spend_the_cpu_budget(sandbox, tmp_path):
    """With the sandbox's thread settings, a torch step's idle OpenMP threads sleep: while its
    main thread waits, the step spends no CPU time. Threads that spin while they wait (the
    setting a step may choose for itself) spend it, and the sandbox's clock counts it. What is
    asserted is where CPU time goes, not how fast the machine is: a spinning thread is waited
    for until it has burnt 0.3 CPU-s, however small its share of a loaded machine."""
    cpu, waiting, log = {}, {}, {}
    for name, args in (("wait", ["2", "wait"]), ("spin", ["2", "spin"])):
        out = sandbox.run(script_step(tmp_path / name, TORCH_STEP, timeout_s=600,
                                      argv=["python", "step.py", *args]))
        assert out.returncode == 0, out.log_tail
        cpu[name], log[name] = out.cpu_s, out.log_tail
        waiting[name] = float(out.log_tail.split("waiting_cpu")[1].split()[0])
    assert "threads 2 PASSIVE" in log["wait"] and "threads 2 ACTIVE" in log["spin"]
    assert waiting["wait"] < 0.1, (waiting, log["wait"])  # a second of waiting: ~nothing
    assert waiting["spin"] >= 0.3, (waiting, log["spin"])
    assert cpu["spin"] >= waiting["spin"], (cpu, waiting)  # the clock counts every thread


def test_without_a_cgroup_the_clock_still_counts_a_detached_child(tmp_path):
    """The local sandbox of an engine without root has no cgroup: per-process accounting of
    the launcher's tree (a subreaper, so orphans stay in it) counts and stops the same step,
    and nothing of it survives."""
    from darwin_git.run.local import LocalSandbox

    sandbox = LocalSandbox()
    sandbox.root = False  # the code path an engine without root takes
    marker = f"darwin-orphan-{tmp_path.name}"
    out = sandbox.run(script_step(tmp_path, DETACHED_BURNER, argv=["python", "step.py", marker],
                                  clock_limit=ClockLimit("cpu", 1.0)))
    assert out.over_budget and out.returncode is None, out.log_tail
    assert out.cpu_source == "proc" and out.cpu_s >= 1.0
    assert "not root" in out.log_tail
    survivors = []
    for entry in os.scandir("/proc"):
        try:
            if entry.name.isdigit() and marker.encode() in open(entry.path + "/cmdline", "rb").read():
                survivors.append(entry.name)
        except OSError:
            pass
    assert survivors == []


MAPPED_WRITER = """
    import mmap, os, sys, time
    def burn(until):
        while time.process_time() < until:
            pass
    fd = os.open(os.path.join(os.environ["DARWIN_OUT"], "ckpt.bin"), os.O_RDWR | os.O_CREAT)
    os.ftruncate(fd, 1 << 16)
    mapped = mmap.mmap(fd, 1 << 16)
    burn(0.5)
    mapped[:] = b"a" * (1 << 16)  # before the budget: every page faults now
    burn(1.6)  # past the 1 s budget, inside the 2 s save window
    if sys.argv[1] == "change":
        before = os.fstat(fd).st_ctime
        mapped[:] = b"b" * (1 << 16)  # dirty pages: no fault, usually no new change time
        print("ctime moved", os.fstat(fd).st_ctime - before)
    print("done", flush=True)
"""


@pytest.mark.parametrize("change", [True, False])
def test_a_final_file_changed_through_a_mapping_after_the_budget_is_late(sandbox, tmp_path,
                                                                         change):
    """Step.final_files are read when the clock passes the budget and again at the end: a
    change through a shared writable mapping, which need not move the file's change time, is
    late; a file left alone in the save window is not."""
    out = sandbox.run(script_step(tmp_path, MAPPED_WRITER,
                                  argv=["python", "step.py", "change" if change else "keep"],
                                  clock_limit=ClockLimit("cpu", 3.0, grace_s=2.0),
                                  final_files=("ckpt.bin",)))
    assert out.returncode == 0 and "done" in out.log_tail, out.log_tail
    assert out.cpu_s > 1.0  # it did use the window
    assert out.late_files == (("ckpt.bin",) if change else ()), out.log_tail
