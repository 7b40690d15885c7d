"""The images the docker runner uses, and an offline way to make one.

Two kinds, told apart by labels the runner reads (:func:`read_image`):

- ``host`` (``darwin-git image build``, the default ``darwin-git:local-<build id>``): a tiny root
  filesystem built ``FROM scratch`` out of this machine's own files: the shared libraries the
  host Python and every extension module in its environment need, a shell, ``/etc/passwd`` with
  the sandbox user. Python itself is not copied: the runner bind-mounts the host interpreter and
  its environment read-only at their own paths (recorded in the labels). No registry is
  contacted, so this works offline and in CI, and builds in seconds. The tag names the build it
  belongs to (:func:`build_id`: darwin-git's version, this recipe, the interpreter), so two
  checkouts or environments on one machine never run each other's image.
- ``self-contained`` (``Dockerfile.gpu``, for GPU machines): a CUDA PyTorch base with darwin-git
  installed; ``python`` on PATH is the interpreter and nothing of the host is mounted.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from .base import SandboxUnavailable, stable_python

LOCAL_REPO = "darwin-git"
LABEL = "org.darwin-git"  # label prefix on images and containers
IMAGE_FORMAT = "1"
HOST_BUILD = "3"  # bump when write_rootfs or the labels change: older host images are rebuilt
SANDBOX_UID = 10001  # the non-root user steps run as (when the engine itself runs as root)
DOCKERFILE_GPU = Path(__file__).with_name("Dockerfile.gpu")
# Small tools a training script may shell out to; all are optional.
TOOLS = ("sh", "dash", "bash", "cat", "ls", "env", "sleep", "true", "false", "id", "echo",
         "head", "tail", "mkdir", "rm", "cp", "mv", "nproc", "uname")
CA_FILES = ("/etc/ssl/certs/ca-certificates.crt", "/usr/lib/ssl/cert.pem", "/usr/lib/ssl/certs",
            "/etc/ssl/openssl.cnf", "/usr/lib/ssl/openssl.cnf", "/etc/pki/tls/certs/ca-bundle.crt")
_LDD_LINE = re.compile(r"(?:=>\s*)?(/\S+)\s+\(0x")

HOW_TO = (
    "build the offline image with `darwin-git image build` (uses this machine's Python, no "
    "registry needed), or on a GPU machine `darwin-git image build --gpu` (CUDA PyTorch from "
    "darwin_git/run/Dockerfile.gpu) and set DARWIN_DOCKER_IMAGE=darwin-git:gpu"
)


@dataclass(frozen=True)
class ImageInfo:
    tag: str
    kind: str  # "host" | "self-contained"
    python: str  # the interpreter a step's "python" means inside the container
    mounts: tuple[str, ...]  # host folders bind-mounted read-only at the same path (host kind)
    uid: int
    build: str | None = None  # build_id() of the darwin-git that made it (host kind)
    hidden: tuple[str, ...] = ()  # darwin_git folders of the mounted Python: masked (host kind)


def build_id(python: str | None = None) -> str:
    """What a host image is made from: darwin-git's version, this module (the recipe) and the
    interpreter it mounts (its path, resolved). Two checkouts or venvs get different ids."""
    from .. import __version__

    h = hashlib.sha256()
    h.update(f"{__version__}\0{HOST_BUILD}\0".encode())
    h.update(Path(__file__).read_bytes())
    exe = python or sys.executable  # its folder resolved, not the file: a venv's python is a
    h.update(os.path.join(os.path.realpath(os.path.dirname(exe)),  # link to the base one
                          os.path.basename(exe)).encode())
    return h.hexdigest()[:12]


def local_tag(python: str | None = None) -> str:
    """The offline image of this build for ``python`` (default: this interpreter)."""
    return f"{LOCAL_REPO}:local-{build_id(python)}"


DEFAULT_TAG = local_tag()  # this checkout's offline image for this interpreter


def default_tag() -> str:
    """The image the docker runner uses: $DARWIN_DOCKER_IMAGE, else this build's offline one."""
    return os.environ.get("DARWIN_DOCKER_IMAGE") or DEFAULT_TAG


def read_image(client, tag: str) -> ImageInfo:
    """The image's darwin labels; SandboxUnavailable saying how to make it when it is missing."""
    import docker.errors

    try:
        image = client.images.get(tag)
    except docker.errors.ImageNotFound:
        raise SandboxUnavailable(f"docker image {tag!r} not found: {HOW_TO}") from None
    labels = image.labels or {}
    if labels.get(f"{LABEL}.image-format") != IMAGE_FORMAT:
        raise SandboxUnavailable(
            f"docker image {tag!r} has no darwin-git labels (format {IMAGE_FORMAT}): {HOW_TO}")
    info = ImageInfo(
        tag=tag,
        kind=labels.get(f"{LABEL}.kind", "self-contained"),
        python=labels.get(f"{LABEL}.python", "python"),
        mounts=tuple(json.loads(labels.get(f"{LABEL}.mounts", "[]"))),
        uid=int(labels.get(f"{LABEL}.uid", SANDBOX_UID)),
        build=labels.get(f"{LABEL}.build"),
        hidden=tuple(json.loads(labels.get(f"{LABEL}.hidden", "[]"))),
    )
    if info.kind == "host" and labels.get(f"{LABEL}.host-build") != HOST_BUILD:
        raise SandboxUnavailable(f"docker image {tag!r} was built by an older darwin-git; "
                                 "rebuild it with `darwin-git image build`")
    missing = [m for m in info.mounts if not Path(m).is_dir()]
    if missing:
        raise SandboxUnavailable(
            f"docker image {tag!r} mounts host Python folders that no longer exist "
            f"({', '.join(missing)}); rebuild it with `darwin-git image build`")
    return info


def python_layout(python: str) -> tuple[str, list[str], list[str], list[str]]:
    """(executable, folders to mount, folders whose shared objects it loads, darwin_git package
    folders it would import) of a host interpreter: it is mounted whole (venv + base install),
    but only its library folders are scanned, so a base install at /usr does not mean running
    ldd on all of /usr. The package folders are masked in every container (they hold the
    corpus); they are found as a step would look (-I: no PYTHONPATH, no cwd), not imported."""
    probe = ("import sys, json, sysconfig, importlib.util; p = sysconfig.get_paths(); "
             "s = importlib.util.find_spec('darwin_git'); print(json.dumps("
             "[sys.executable, sys.prefix, sys.base_prefix, [p['stdlib'], p['platstdlib'], "
             "p['purelib'], p['platlib'], sysconfig.get_config_var('LIBDIR') or ''], "
             "list(s.submodule_search_locations or []) if s else []]))")
    try:
        out = subprocess.run([python, "-I", "-c", probe], capture_output=True, text=True,
                             timeout=60, check=True).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise SandboxUnavailable(f"cannot run {python!r} to find its installation: {exc}") from exc
    exe, prefix, base, libdirs, package = json.loads(out)
    exe = stable_python(exe, prefix)  # inside the mounted folders, whatever links led to it
    mounts = sorted({os.path.realpath(prefix), os.path.realpath(base)})
    # Nested mounts would shadow each other; keep the outermost folder only.
    mounts = [m for m in mounts if not any(m != o and m.startswith(o + "/") for o in mounts)]
    *trees, libdir = libdirs
    scan = {os.path.realpath(d) for d in trees + [prefix] if d and os.path.isdir(d)}
    scan = {d for d in scan if not any(d.startswith(o + "/") for o in scan)}
    if libdir and os.path.isdir(libdir):  # libpython only: LIBDIR may be all of /usr/lib
        scan |= {str(p) for p in Path(libdir).glob("libpython*.so*")}
    return exe, mounts, sorted(scan), sorted({os.path.realpath(p) for p in package})


def _elf_files(folders: list[str], python: str) -> list[str]:
    files = [os.path.realpath(python)] + [f for f in folders if os.path.isfile(f)]
    for folder in folders:
        for dirpath, _, names in os.walk(folder):
            files += [os.path.join(dirpath, n) for n in names
                      if n.endswith(".so") or ".so." in n]
    return sorted({f for f in files if os.path.isfile(f) and not os.path.islink(f)})


def _ldd(path: str) -> set[str]:
    try:
        out = subprocess.run(["ldd", path], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return set()
    return {m.group(1) for line in out.splitlines() if (m := _LDD_LINE.search(line))}


def system_libraries(elf_files: list[str], inside: list[str]) -> set[str]:
    """Shared libraries the files load from outside ``inside`` (those come with the mounts)."""
    libs: set[str] = set()
    with ThreadPoolExecutor(max_workers=4) as pool:
        for found in pool.map(_ldd, elf_files):
            libs |= found
    # glibc loads libgcc_s at run time (thread cancellation, unwinding): ldd cannot see that.
    for extra in ("/lib/x86_64-linux-gnu/libgcc_s.so.1", "/usr/lib/x86_64-linux-gnu/libgcc_s.so.1",
                  "/lib64/libgcc_s.so.1"):
        if os.path.exists(extra):
            libs.add(extra)
            break
    return {lib for lib in libs if not any(lib.startswith(d + "/") for d in inside)}


class _RootFs:
    """A tar of host paths with their symlinks kept, so /lib -> usr/lib layouts survive."""

    def __init__(self, fileobj):
        self.tar = tarfile.open(fileobj=fileobj, mode="w")
        self.seen: set[str] = set()

    def directory(self, path: str, mode: int = 0o755) -> None:
        parts = Path(path).parts[1:]
        for i in range(1, len(parts) + 1):
            name = "/".join(parts[:i])
            if name not in self.seen:
                self.seen.add(name)
                info = tarfile.TarInfo(name)
                info.type, info.mode, info.mtime = tarfile.DIRTYPE, mode, int(time.time())
                self.tar.addfile(info)

    def text(self, path: str, content: str, mode: int = 0o644) -> None:
        self.directory(os.path.dirname(path))
        data = content.encode()
        info = tarfile.TarInfo(path.lstrip("/"))
        info.size, info.mode, info.mtime = len(data), mode, int(time.time())
        self.tar.addfile(info, io.BytesIO(data))
        self.seen.add(path.lstrip("/"))

    def host_path(self, path: str, depth: int = 0) -> None:
        """Add ``path`` as the host has it: every symlink on the way, then the file."""
        if depth > 20:
            return
        parts = Path(path).parts
        current = "/"
        for i, part in enumerate(parts[1:], start=1):
            current = os.path.join(current, part)
            name = current.lstrip("/")
            if os.path.islink(current):
                if name not in self.seen:
                    self.seen.add(name)
                    self.tar.add(current, arcname=name, recursive=False)
                target = os.path.join(os.path.dirname(current), os.readlink(current))
                rest = os.path.join(os.path.normpath(target), *parts[i + 1:])
                return self.host_path(rest, depth + 1)
            if i < len(parts) - 1:
                self.directory(current)
        name = current.lstrip("/")
        if os.path.isdir(current):
            self.directory(current)
        elif name not in self.seen and os.path.isfile(current):
            self.seen.add(name)
            self.tar.add(current, arcname=name, recursive=False)

    def close(self) -> None:
        self.tar.close()


def _passwd(uid: int) -> tuple[str, str]:
    passwd = (f"root:x:0:0:root:/root:/bin/sh\n"
              f"darwin:x:{uid}:{uid}:darwin sandbox:/darwin/out:/bin/sh\n"
              f"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
    group = f"root:x:0:\ndarwin:x:{uid}:\nnogroup:x:65534:\n"
    return passwd, group


def write_rootfs(fileobj, python: str, mounts: list[str], scan: list[str] | None = None,
                 uid: int = SANDBOX_UID) -> int:
    """Write the host image's root filesystem as a tar; returns the number of libraries."""
    tools = [p for t in TOOLS if (p := shutil.which(t, path="/usr/bin:/bin"))]
    elf = _elf_files(scan if scan is not None else mounts, python)
    libs = system_libraries(elf + [os.path.realpath(t) for t in tools], mounts)
    fs = _RootFs(fileobj)
    for d, mode in (("/tmp", 0o1777), ("/root", 0o755), ("/darwin/tree", 0o755),
                    ("/darwin/out", 0o777), ("/darwin/in", 0o755),
                    ("/proc", 0o755), ("/sys", 0o755), ("/dev", 0o755), ("/etc", 0o755)):
        fs.directory(d, mode)
    passwd, group = _passwd(uid)
    fs.text("/etc/passwd", passwd)
    fs.text("/etc/group", group)
    fs.text("/etc/hostname", "sandbox\n")
    for path in sorted(libs) + tools + ["/bin/sh"]:  # /bin/sh keeps a merged-usr /bin link
        fs.host_path(path)
    # Public CA bundle: libraries such as pygit2 refuse to import without their default paths.
    for path in CA_FILES:
        if os.path.exists(path):
            fs.host_path(path)
    # Mount points for the host Python, so the read-only root needs no changes at start.
    for m in mounts:
        fs.directory(m)
    fs.close()
    return len(libs)


def _dockerfile(tag: str, python: str, mounts: list[str], uid: int,
                hidden: list[str] = ()) -> str:
    labels = {
        f"{LABEL}.image-format": IMAGE_FORMAT,
        f"{LABEL}.kind": "host",
        f"{LABEL}.host-build": HOST_BUILD,
        f"{LABEL}.build": build_id(python),
        f"{LABEL}.python": python,
        f"{LABEL}.mounts": json.dumps(mounts),
        f"{LABEL}.hidden": json.dumps(list(hidden)),
        f"{LABEL}.uid": str(uid),
    }
    label_lines = " \\\n      ".join(f"{k}={json.dumps(v)}" for k, v in labels.items())
    return (f"# darwin-git offline image {tag}: host libraries only, Python bind-mounted.\n"
            f"FROM scratch\nADD rootfs.tar /\nENV PATH=/usr/local/bin:/usr/bin:/bin\n"
            f"USER {uid}:{uid}\nWORKDIR /darwin/tree\nLABEL {label_lines}\n")


def build_host_image(tag: str | None = None, python: str | None = None, client=None,
                     uid: int = SANDBOX_UID, log=lambda msg: None) -> ImageInfo:
    """Assemble and build the offline ``host`` image (tag: this build's, :func:`local_tag`);
    no registry is contacted."""
    import docker
    import docker.errors

    client = client or docker_client()
    tag = tag or local_tag(python)
    exe, mounts, scan, hidden = python_layout(python or sys.executable)
    log(f"python {exe}; mounted read-only from the host: {', '.join(mounts)}"
        + (f"; masked: {', '.join(hidden)}" if hidden else ""))
    with tempfile.TemporaryDirectory(prefix="darwin-image-") as tmp:
        rootfs = Path(tmp) / "rootfs.tar"
        with open(rootfs, "wb") as f:
            n_libs = write_rootfs(f, exe, mounts, scan, uid)
        log(f"root filesystem: {n_libs} host libraries, {rootfs.stat().st_size >> 20} MiB")
        context = Path(tmp) / "context.tar"
        with tarfile.open(context, "w") as tar:
            data = _dockerfile(tag, exe, mounts, uid, hidden).encode()
            info = tarfile.TarInfo("Dockerfile")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
            tar.add(rootfs, arcname="rootfs.tar")
        try:
            old = client.images.get(tag).id
        except docker.errors.ImageNotFound:
            old = None
        with open(context, "rb") as f:
            try:
                new, _ = client.images.build(fileobj=f, custom_context=True, tag=tag, rm=True,
                                             forcerm=True, pull=False, network_mode="none")
            except (docker.errors.BuildError, docker.errors.APIError) as exc:
                raise SandboxUnavailable(f"docker could not build {tag!r}: {exc}") from exc
    if old and old != new.id:  # the replaced build would linger as a dangling image
        try:
            client.images.remove(old)
        except docker.errors.APIError:  # still used by a container, or tagged elsewhere
            pass
    return read_image(client, tag)


def gpu_context(fileobj) -> None:
    """The build context of Dockerfile.gpu: the package and its metadata, nothing else."""
    root = Path(__file__).resolve().parents[2]
    if not (root / "pyproject.toml").is_file():
        raise SandboxUnavailable(
            f"the GPU image is built from a source checkout; {root} has no pyproject.toml")
    skip = lambda info: None if "__pycache__" in info.name or info.name.endswith(".pyc") else info
    with tarfile.open(fileobj=fileobj, mode="w") as tar:
        tar.add(DOCKERFILE_GPU, arcname="Dockerfile")
        for name in ("pyproject.toml", "README.md", "darwin_git"):
            if (root / name).exists():
                tar.add(root / name, arcname=name, filter=skip)
            else:  # the Dockerfile copies README.md: an empty one keeps the build going
                info = tarfile.TarInfo(name)
                tar.addfile(info, io.BytesIO(b""))


def build_gpu_image(tag: str = "darwin-git:gpu", base: str | None = None, client=None,
                    log=lambda msg: None) -> ImageInfo:
    """Build Dockerfile.gpu (needs the base image's registry and PyPI)."""
    import docker.errors

    client = client or docker_client()
    with tempfile.TemporaryFile() as f:
        gpu_context(f)
        f.seek(0)
        try:
            _, lines = client.images.build(fileobj=f, custom_context=True, tag=tag, rm=True,
                                           buildargs={"BASE": base} if base else None)
            for line in lines:
                if "stream" in line and line["stream"].strip():
                    log(line["stream"].rstrip())
        except (docker.errors.BuildError, docker.errors.APIError) as exc:
            raise SandboxUnavailable(f"docker could not build {tag!r}: {exc}") from exc
    return read_image(client, tag)


def ensure_host_image(tag: str | None = None, client=None, log=lambda msg: None) -> ImageInfo:
    """The image if it is usable with this interpreter, else build it (tests and CI call this
    once). A host image made from another environment or build is rebuilt."""
    client = client or docker_client()
    tag = tag or local_tag()
    try:
        info = read_image(client, tag)
    except SandboxUnavailable:
        return build_host_image(tag, client=client, log=log)
    bin_dir = lambda exe: os.path.realpath(os.path.dirname(exe))  # noqa: E731
    if info.kind == "host" and (bin_dir(info.python) != bin_dir(sys.executable)
                                or info.build != build_id()):
        log(f"{tag} was made by another build or for {info.python}: rebuilding")
        return build_host_image(tag, client=client, log=log)
    return info


def ensure_default_image(client=None, log=lambda msg: None) -> ImageInfo | None:
    """What the docker runner needs before its first step: this build's offline image, built
    if missing; a tag the user chose ($DARWIN_DOCKER_IMAGE) is never built here (None)."""
    if os.environ.get("DARWIN_DOCKER_IMAGE"):
        return None
    return ensure_host_image(local_tag(), client=client, log=log)


def docker_client():
    """A docker client, or SandboxUnavailable saying how to get a daemon."""
    try:
        import docker

        client = docker.from_env(timeout=120)
        client.ping()
        return client
    except Exception as exc:  # docker raises many kinds here; all mean "no daemon"
        raise SandboxUnavailable(
            f"no Docker daemon reachable ({exc.__class__.__name__}: {exc}); install docker and "
            "start it (`dockerd &` as root, or `systemctl start docker`), or set DOCKER_HOST"
        ) from None
