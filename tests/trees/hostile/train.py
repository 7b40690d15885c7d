"""Each attack prints one line saying whether it worked, then the run exits with status 3."""
import os
import socket
import sys
import time

attack, *args = open("attack.txt").read().split()


def net(host, port):
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
        print("net: CONNECTED")
    except OSError as exc:
        print(f"net: blocked ({exc})")


def env():
    leaked = [k for k in os.environ if "KEY" in k or "TOKEN" in k]
    print(f"env: LEAKED {leaked}" if leaked else "env: clean")


def write(*paths):
    for path in paths:
        path = os.path.expandvars(path)
        try:
            with open(path, "a") as f:
                f.write("tampered")
            print(f"write {path}: WRITTEN")
        except OSError as exc:
            print(f"write {path}: denied ({exc.strerror})")


def read(path):
    try:
        print(f"read: READ {len(open(path, 'rb').read())} bytes")
    except OSError as exc:
        print(f"read: denied ({exc.strerror})")


def forkbomb():
    made = 0
    while made < 5000:
        try:
            if os.fork() == 0:
                os.setsid()  # try to leave the process group as well
                time.sleep(3600)
                os._exit(0)
            made += 1
        except OSError:
            break
    print(f"fork: stopped after {made} children")


def spew():
    line = b"x" * (1 << 20)
    while True:
        sys.stdout.buffer.write(line)


ATTACKS = {"net": net, "env": env, "write": write, "read": read, "forkbomb": forkbomb,
           "spew": spew}
ATTACKS[attack](*args)
sys.stdout.flush()
sys.exit(3)
