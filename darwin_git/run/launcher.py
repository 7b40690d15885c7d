"""The local sandbox's launcher: ``python -I -S launcher.py CONFIG.json`` (stdlib only).

It runs as the engine's user, in this order:

1. joins the step's cgroup (every later process is counted and limited from its start);
2. unshares namespaces: as root a new PID, mount, network, IPC and UTS namespace; without
   root it tries a user + network + IPC namespace and says in the log when it cannot;
3. as root, forks the PID namespace's init, which builds the step's filesystem view (a
   tmpfs root of read-only bind mounts, private scratch, a minimal /dev, a /proc of the
   namespace alone), pivots into it and supervises the step; without root the launcher
   itself supervises, as a child subreaper (orphans of the step become its children);
4. the supervisor forks the step, which sets its rlimits, drops to the run's uid, gets keyrings
   of its own (:func:`own_keyrings`) and execs;
5. when the step's main process exits, the supervisor kills whatever it left and reaps it
   all (so every exited child's CPU time is in the launcher's rusage), and the launcher exits
   as the step did (the same code, or the same signal).

Killing the launcher kills the step: init dies with it (PR_SET_PDEATHSIG), and the kernel
ends every process of a PID namespace whose init is gone. The engine's death kills it too:
the launcher holds the read end of a pipe (the lifeline) whose write end only the engine
holds; when the kernel closes that end (the engine exited or was killed with -9), the read
returns EOF and the launcher ends the step, whichever thread of the engine started it.
"""
import ctypes
import json
import os
import resource
import signal
import sys
import threading
import time

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS, PR_SET_CHILD_SUBREAPER = 1, 38, 36
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}
SYS_KEYCTL = {"x86_64": 250, "aarch64": 219}
KEYCTL_JOIN_SESSION_KEYRING, KEYCTL_CLEAR, KEYCTL_GET_PERSISTENT = 1, 7, 22
KEY_SPEC_SESSION_KEYRING, KEY_SPEC_USER_KEYRING, KEY_SPEC_USER_SESSION_KEYRING = -3, -4, -5
ENOSYS, EPERM, EOPNOTSUPP = 38, 1, 95  # no keyrings here (kernel, or a seccomp filter): none to share
NOTE = "[darwin sandbox] "

libc = ctypes.CDLL(None, use_errno=True)


def fail(message, code=125):
    sys.stderr.write(NOTE + message + "\n")
    sys.stderr.flush()
    os._exit(code)


def check(result, what):
    if result != 0:
        fail("cannot isolate the step: %s: %s" % (what, os.strerror(ctypes.get_errno())))


def mount(src, dst, fstype=None, flags=0, data=None):
    enc = lambda s: s.encode() if isinstance(s, str) else s  # noqa: E731
    check(libc.mount(enc(src), enc(dst), enc(fstype), flags, enc(data)), "mount " + dst)


def build_view(view):
    """Populate a tmpfs root with what the step may see, then pivot into it."""
    root = view["root"]
    mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing propagates back to the host
    mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=4m")
    at = lambda path: root + path  # noqa: E731
    for target, link in view["symlinks"]:
        os.makedirs(os.path.dirname(at(target)), exist_ok=True)
        os.symlink(link, at(target))
    for dst, options in view["tmpfs"]:  # before the binds: the stage may lie below /tmp
        os.makedirs(at(dst), exist_ok=True)
        mount("tmpfs", at(dst), "tmpfs", MS_NOSUID | MS_NODEV, options)
    for src, dst, writable in view["binds"]:
        if os.path.isdir(src):
            os.makedirs(at(dst), exist_ok=True)
        else:
            os.makedirs(os.path.dirname(at(dst)), exist_ok=True)
            open(at(dst), "a").close()
        mount(src, at(dst), None, MS_BIND | MS_REC)
        if not writable:
            mount(None, at(dst), None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID)
    for dst in view["masks"]:  # hidden folders inside a bound one: an empty read-only tmpfs
        if os.path.isdir(at(dst)):
            mount("tmpfs", at(dst), "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                  "size=4k,mode=0555")
        elif os.path.exists(at(dst)):
            mount("/dev/null", at(dst), None, MS_BIND)
    for path, text in view["files"]:
        os.makedirs(os.path.dirname(at(path)), exist_ok=True)
        with open(at(path), "w") as f:
            f.write(text)
        os.chmod(at(path), 0o644)
    os.makedirs(at("/proc"), exist_ok=True)  # this namespace's processes, and of those only
    mount("proc", at("/proc"), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "hidepid=2")
    os.makedirs(at("/sys"), exist_ok=True)
    mount("sysfs", at("/sys"), "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
    os.chdir(root)
    number = SYS_PIVOT_ROOT.get(os.uname().machine)
    if number is not None and libc.syscall(number, b".", b".") == 0:
        check(libc.umount2(b".", MNT_DETACH), "detach the old root")  # the host's tree
    else:  # no pivot_root here: move the new root over / and chroot (the old one stays below)
        mount(root, "/", None, 1 << 13)  # MS_MOVE
        os.chroot(".")
    os.chdir("/")
    mount(None, "/", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)


def keyctl(*args):
    """keyctl(2): (result, errno)."""
    number = SYS_KEYCTL.get(os.uname().machine)
    if number is None:
        return -1, ENOSYS
    result = libc.syscall(number, *(ctypes.c_long(a) for a in args))
    return result, (ctypes.get_errno() if result < 0 else 0)


def own_keyrings(clear_user):
    """Keyrings are kernel state that outlives processes and follows them across fork and exec:
    a session keyring is inherited from whoever started the engine (a login, sshd, a systemd
    service), and the user keyrings belong to a uid. The step gets a new, empty session keyring
    (so it neither possesses the engine's session keyring nor shares one with another step);
    with ``clear_user`` (the run's own uid, in the host's user namespace) its user, user-session
    and persistent keyrings are emptied first, so that nothing a step with the same uid left
    there is found. Without root the step has a user namespace of its own, whose user keyrings
    are new."""
    if clear_user:
        for ring in (KEY_SPEC_USER_KEYRING, KEY_SPEC_USER_SESSION_KEYRING):
            keyctl(KEYCTL_CLEAR, ring)
    joined, err = keyctl(KEYCTL_JOIN_SESSION_KEYRING, 0)
    if joined < 0:
        if err in (ENOSYS, EPERM, EOPNOTSUPP):
            return  # keyrings are not available to this process, nor to the step
        fail("cannot isolate the step: a session keyring of its own: %s" % os.strerror(err))
    if clear_user:
        persistent, _ = keyctl(KEYCTL_GET_PERSISTENT, -1, KEY_SPEC_SESSION_KEYRING)
        if persistent >= 0:
            keyctl(KEYCTL_CLEAR, persistent)


def become_step(cfg):
    """In the forked child: limits, the run's uid, keyrings of its own, the step's program."""
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    for name, value in cfg["rlimits"]:
        resource.setrlimit(getattr(resource, name), (value, value))
    if cfg["uid"] is not None:
        os.setgroups([])
        os.setgid(cfg["uid"])
        os.setuid(cfg["uid"])
    own_keyrings(clear_user=cfg["uid"] is not None)
    os.chdir(cfg["cwd"])
    try:
        os.execve(cfg["argv"][0], cfg["argv"], cfg["env"])
    except OSError as exc:
        sys.stderr.write(NOTE + "cannot start %r: %s\n" % (cfg["argv"][0], exc))
        sys.stderr.flush()
        os._exit(127)


def descendants(root):
    # procs.descendants' twin: the launcher is stdlib-only (python -I -S) and runs where the
    # darwin_git package is hidden, so it cannot import it.
    children = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open("/proc/%s/stat" % name) as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(name))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def end_the_rest(ns_init):
    if ns_init:
        pids = [-1]  # from a PID namespace's init: every other process of the namespace
    else:
        pids = descendants(os.getpid())
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def lifeline_closed(fd):
    """The engine's end of the lifeline is closed (it never writes; anything read is ignored)."""
    try:
        return os.read(fd, 1) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def wait_init(init, lifeline):
    """waitpid(init) while watching the lifeline (no thread: a process that unshared its PID
    namespace cannot start one); the engine's death kills init and so the namespace."""
    if lifeline is None:
        return os.waitpid(init, 0)[1]
    import select

    os.set_blocking(lifeline, False)
    poller = select.poll()
    poller.register(lifeline, select.POLLIN | select.POLLHUP)
    try:
        poller.register(os.pidfd_open(init), select.POLLIN)  # Linux >= 5.3
        timeout = None
    except (AttributeError, OSError):
        timeout = 100  # ms: then waitpid is polled
    while True:
        pid, status = os.waitpid(init, os.WNOHANG)
        if pid:
            return status
        for fd, _ in poller.poll(timeout):
            if fd == lifeline and lifeline_closed(lifeline):
                poller.unregister(lifeline)
                os.kill(init, signal.SIGKILL)


def on_engine_death(fd, end_step):
    """Call end_step once the engine's end of the lifeline pipe is closed (a thread: fork
    before calling this)."""
    def watch():
        while True:
            try:
                if os.read(fd, 1):
                    continue  # the engine never writes; ignore anything else
            except InterruptedError:
                continue
            except OSError:
                pass
            end_step()
            return
    threading.Thread(target=watch, daemon=True).start()


def end_tree():
    """Without a PID namespace: kill our descendants until none is left (we are their
    subreaper: whatever they orphan comes back to us)."""
    for _ in range(500):
        pids = descendants(os.getpid())
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.01)


def supervise(cfg, ns_init):
    """Fork the step; reap everything until nothing is left; return the main wait status."""
    if not ns_init:
        libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    child = os.fork()
    if child == 0:
        try:
            become_step(cfg)
        finally:
            os._exit(127)
    if not ns_init and cfg["lifeline"] is not None:
        on_engine_death(cfg["lifeline"], end_tree)
    status = None
    while True:
        try:
            pid, st = os.waitpid(-1, 0)
        except ChildProcessError:
            return status
        except InterruptedError:
            continue
        if pid == child:
            status = st
        if status is not None:
            end_the_rest(ns_init)


def exit_like(status):
    if status is None:
        os._exit(125)
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        if sig not in (signal.SIGKILL, signal.SIGSTOP):  # those two have no handler to reset
            signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
        os._exit(128 + sig)
    os._exit(os.WEXITSTATUS(status))


def main():
    with open(sys.argv[1]) as f:
        cfg = json.load(f)
    for path in cfg["cgroup_procs"]:
        try:
            with open(path, "w") as f:
                f.write(str(os.getpid()))
        except OSError as exc:
            fail("cannot join the step's cgroup %s: %s" % (path, exc.strerror))
    if cfg["lifeline"] is not None:
        os.set_inheritable(cfg["lifeline"], False)  # never into the step's program
    flags = cfg["unshare"]
    if flags and libc.unshare(flags) != 0:
        err = os.strerror(ctypes.get_errno())
        if cfg["uid"] is not None:
            fail("cannot isolate the step: unshare: " + err)
        sys.stderr.write(NOTE + "network, IPC and user keyrings not isolated (unshare: " + err
                         + ")\n")
    if not flags & CLONE_NEWPID:
        exit_like(supervise(cfg, ns_init=False))
    status_r, status_w = os.pipe()
    init = os.fork()
    if init == 0:  # pid 1 of the new namespace
        os.close(status_r)
        if cfg["lifeline"] is not None:
            os.close(cfg["lifeline"])  # the launcher watches it
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if cfg["hostname"]:
            libc.sethostname(cfg["hostname"].encode(), len(cfg["hostname"]))
        if cfg["view"]:
            try:
                build_view(cfg["view"])
            except OSError as exc:
                fail("cannot isolate the step: building its view: %s" % exc)
        status = supervise(cfg, ns_init=True)
        os.write(status_w, str(-1 if status is None else status).encode())
        os._exit(0)
    os.close(status_w)
    st = wait_init(init, cfg["lifeline"])
    relayed = os.read(status_r, 64)
    if relayed and int(relayed) >= 0:
        st = int(relayed)
    exit_like(st)


if __name__ == "__main__":
    main()
