"""The box a user's model runs in: a process confines ITSELF, irreversibly, before it loads a
user's teacher file, with what the Linux kernel provides —

- Landlock (a small ctypes binding; syscalls 444-446): reads only the Python install, the
  package, system libraries and the files named (the model, its inputs); writes only the
  folders named (the run's folder); no TCP bind / connect (ABI ≥ 4); no signals or abstract
  unix sockets outside the box (ABI ≥ 6);
- a seccomp filter (all threads, TSYNC): no socket() at all, no ptrace / process_vm_*;
- PR_SET_NO_NEW_PRIVS, and setrlimit: address space (DFKD_MAX_MEMORY_GB above what the process
  already maps), CPU time (DFKD_MAX_CPU_HOURS, default 24), file size, open files.

Landlock restricts the calling thread and the threads it starts later, so a process confines
itself while it runs one thread of its own (a worker: before its heartbeat thread starts).
Where the kernel lacks Landlock the box says so once; a user's model is then refused when
DFKD_EXPOSED=1 (the dashboard listens beyond loopback) unless the operator sets
DFKD_ALLOW_UNCONFINED_MODELS=1, and runs with a warning otherwise.
"""
from __future__ import annotations

import ctypes
import errno
import os
import platform
import resource
import signal
import sys
import sysconfig
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ModelError

# ---------------------------------------------------------------- Landlock (linux/landlock.h)
SYS_CREATE_RULESET, SYS_ADD_RULE, SYS_RESTRICT_SELF = 444, 445, 446  # the same on x86_64 and aarch64
CREATE_RULESET_VERSION = 1 << 0
RULE_PATH_BENEATH, RULE_NET_PORT = 1, 2
FS_EXECUTE, FS_WRITE_FILE, FS_READ_FILE, FS_READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
FS_REMOVE_DIR, FS_REMOVE_FILE, FS_MAKE_CHAR, FS_MAKE_DIR = 1 << 4, 1 << 5, 1 << 6, 1 << 7
FS_MAKE_REG, FS_MAKE_SOCK, FS_MAKE_FIFO, FS_MAKE_BLOCK, FS_MAKE_SYM = 1 << 8, 1 << 9, 1 << 10, 1 << 11, 1 << 12
FS_REFER, FS_TRUNCATE, FS_IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15  # ABI 2, 3, 5
NET_BIND_TCP, NET_CONNECT_TCP = 1 << 0, 1 << 1  # ABI 4
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1 << 0, 1 << 1  # ABI 6
FILE_RIGHTS = FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_TRUNCATE | FS_IOCTL_DEV  # the rights a rule on a file may hold
PR_SET_NO_NEW_PRIVS = 38

# ---------------------------------------------------------------- seccomp
SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC = 1, 1
SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO = 0x7FFF0000, 0x00050000
# arch: (AUDIT_ARCH, seccomp syscall, {denied syscall: errno})
SECCOMP_ARCHES = {
    "x86_64": (0xC000003E, 317, {41: errno.EACCES, 101: errno.EPERM, 310: errno.EPERM, 311: errno.EPERM}),
    "aarch64": (0xC00000B7, 277, {198: errno.EACCES, 117: errno.EPERM, 270: errno.EPERM, 271: errno.EPERM}),
}

MEMORY_SLACK_BYTES = 512 * 2**20  # above the budget: thread stacks and allocator arenas the process maps later
DEFAULT_CPU_HOURS = 24.0
MAX_FILE_BYTES = 8 * 2**30  # no file the box writes grows past this
MAX_OPEN_FILES = 512

try:
    _libc = ctypes.CDLL(None, use_errno=True)
    _libc.syscall.restype = ctypes.c_long
except (OSError, AttributeError):  # not a Unix libc: no box here
    _libc = None


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64), ("scoped", ctypes.c_uint64)]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


class _NetPort(ctypes.Structure):
    _fields_ = [("allowed_access", ctypes.c_uint64), ("port", ctypes.c_uint64)]


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(_SockFilter))]


def landlock_abi() -> int:
    """The kernel's Landlock ABI version (0: no Landlock — an old kernel, or disabled)."""
    if sys.platform != "linux" or _libc is None:
        return 0
    abi = _libc.syscall(SYS_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(CREATE_RULESET_VERSION))
    return max(int(abi), 0)


def fs_rights(abi: int) -> int:
    """Every filesystem right this ABI knows (all of them are handled: denied unless a rule grants)."""
    rights = (1 << 13) - 1
    if abi >= 2:
        rights |= FS_REFER
    if abi >= 3:
        rights |= FS_TRUNCATE
    if abi >= 5:
        rights |= FS_IOCTL_DEV
    return rights


READ = FS_EXECUTE | FS_READ_FILE | FS_READ_DIR
WRITE_TREE = (FS_WRITE_FILE | FS_REMOVE_DIR | FS_REMOVE_FILE | FS_MAKE_DIR | FS_MAKE_REG | FS_TRUNCATE)


@dataclass
class Box:
    """What a confined process may touch. read / write: files or folders (a folder: all beneath);
    write implies read. devices: device files that take ioctls (a GPU's)."""

    read: list[str] = field(default_factory=list)
    write: list[str] = field(default_factory=list)
    devices: list[str] = field(default_factory=list)
    memory_bytes: int | None = None  # address space above what is mapped now (None: no cap)
    cpu_seconds: int | None = None
    file_bytes: int = MAX_FILE_BYTES
    open_files: int = MAX_OPEN_FILES


@dataclass
class BoxState:
    landlock_abi: int = 0
    landlock: bool = False
    seccomp: bool = False
    no_new_privs: bool = False
    limits: dict = field(default_factory=dict)
    note: str = ""


_state: BoxState | None = None  # set once this process is confined
_plan: Box | None = None  # what a process that will load a user's model (the CLI) may write
_warned = False


_own_process = False  # `python -m dfkd_core` (not main() called inside another program, such as the tests)


def own_process() -> None:
    """Mark this process as the CLI's own (dfkd_core/__main__.py): the CLI may then box it."""
    global _own_process
    _own_process = True


def owns_process() -> bool:
    return _own_process


def confined() -> BoxState | None:
    """This process's box, or None when it was never confined."""
    return _state


def plan(box: Box) -> None:
    """Declare this process as one that may confine itself when it first loads a user's model
    (the CLI: before loading, with the folders it must still write)."""
    global _plan
    _plan = box


def planned() -> Box | None:
    return _plan


def system_reads() -> list[str]:
    """What any Python process here needs to read: the interpreter and its packages, this
    package, system libraries and the few /etc, /proc and /sys files libraries consult."""
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, sysconfig.get_paths()["stdlib"],
             sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"], str(Path(__file__).resolve().parents[2])}  # the folder holding dfkd_core
    paths.update(p for p in sys.path if p and ("site-packages" in p or "dist-packages" in p) and Path(p).is_dir())
    import site

    try:
        paths.add(site.getusersitepackages())
    except Exception:  # noqa: BLE001 - no user site
        pass
    paths.update(["/usr", "/lib", "/lib64", "/bin", "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d",
                  "/etc/localtime", "/etc/timezone", "/proc/self", "/proc/cpuinfo", "/proc/meminfo", "/proc/stat",
                  "/sys/devices/system/cpu", "/sys/fs/cgroup", "/dev/null", "/dev/urandom", "/dev/zero"])
    return sorted(paths)


def gpu_devices() -> list[str]:
    return sorted(str(p) for p in Path("/dev").glob("nvidia*")) + [p for p in ("/proc/driver/nvidia", "/sys/bus/pci/devices",
                                                                                 "/sys/devices") if Path(p).exists()]


def _open_path(path: str) -> int | None:
    try:
        return os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return None  # a path that does not exist here grants nothing


def _landlock(box: Box, abi: int) -> None:
    handled_fs = fs_rights(abi)
    attr = _RulesetAttr(handled_fs, (NET_BIND_TCP | NET_CONNECT_TCP) if abi >= 4 else 0,
                        (SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL) if abi >= 6 else 0)
    fd = _libc.syscall(SYS_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr)), ctypes.c_uint32(0))
    if fd < 0:
        raise OSError(ctypes.get_errno(), f"landlock_create_ruleset: {os.strerror(ctypes.get_errno())}")
    try:
        grants: dict[str, int] = {}
        for paths, rights in ((box.read, READ), (box.write, READ | WRITE_TREE), (box.devices, READ | FS_WRITE_FILE | FS_IOCTL_DEV),
                              (["/dev/null"], FS_READ_FILE | FS_WRITE_FILE)):
            for p in paths:
                grants[p] = grants.get(p, 0) | rights
        for path, rights in grants.items():
            pfd = _open_path(path)
            if pfd is None:
                continue
            try:
                rights &= handled_fs
                if not os.path.isdir(path):
                    rights &= FILE_RIGHTS
                rule = _PathBeneath(rights, pfd)
                if _libc.syscall(SYS_ADD_RULE, ctypes.c_int(fd), ctypes.c_int(RULE_PATH_BENEATH), ctypes.byref(rule),
                                 ctypes.c_uint32(0)) < 0:
                    raise OSError(ctypes.get_errno(), f"landlock_add_rule({path}): {os.strerror(ctypes.get_errno())}")
            finally:
                os.close(pfd)
        if _libc.syscall(SYS_RESTRICT_SELF, ctypes.c_int(fd), ctypes.c_uint32(0)) < 0:
            raise OSError(ctypes.get_errno(), f"landlock_restrict_self: {os.strerror(ctypes.get_errno())}")
    finally:
        os.close(fd)


def _seccomp() -> bool:
    """No socket() (no network of any family), no ptrace / process_vm_* — in every thread."""
    arch = SECCOMP_ARCHES.get(platform.machine())
    if arch is None or sys.platform != "linux":
        return False
    audit, seccomp_nr, denied = arch
    prog = [_SockFilter(0x20, 0, 0, 4)]  # A = arch
    prog.append(_SockFilter(0x15, 1, 0, audit))  # arch == ours → skip the next
    prog.append(_SockFilter(0x06, 0, 0, SECCOMP_RET_ERRNO | errno.EPERM))  # any other ABI (i386 int 0x80): refused
    prog.append(_SockFilter(0x20, 0, 0, 0))  # A = syscall number
    if platform.machine() == "x86_64":  # x32 syscalls: refused
        prog.append(_SockFilter(0x35, 0, 1, 0x40000000))
        prog.append(_SockFilter(0x06, 0, 0, SECCOMP_RET_ERRNO | errno.EPERM))
    for nr, err in denied.items():
        prog.append(_SockFilter(0x15, 0, 1, nr))
        prog.append(_SockFilter(0x06, 0, 0, SECCOMP_RET_ERRNO | err))
    prog.append(_SockFilter(0x06, 0, 0, SECCOMP_RET_ALLOW))
    filters = (_SockFilter * len(prog))(*prog)
    fprog = _SockFprog(len(prog), filters)
    rc = _libc.syscall(ctypes.c_long(seccomp_nr), ctypes.c_uint(SECCOMP_SET_MODE_FILTER),
                       ctypes.c_uint(SECCOMP_FILTER_FLAG_TSYNC), ctypes.byref(fprog))
    if rc != 0:
        raise OSError(ctypes.get_errno(), f"seccomp: {os.strerror(ctypes.get_errno())}")
    return True


def _mapped_bytes() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _set_limit(which: int, value: int, hard_extra: int = 0) -> int:
    """Soft limit `value` (never above the hard limit there is), hard limit `hard_extra` above it."""
    _, hard = resource.getrlimit(which)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    new_hard = value + hard_extra
    if hard != resource.RLIM_INFINITY:
        new_hard = min(new_hard, hard)
    resource.setrlimit(which, (value, new_hard))
    return value


def _cpu_exceeded(signum, frame):
    raise ModelError("The run used up its CPU time (RLIMIT_CPU, DFKD_MAX_CPU_HOURS) and was stopped.")


def env_positive(name: str, default: float) -> float:
    """A positive number from the environment; `default` when it is unset, not a number or not positive."""
    text = os.environ.get(name, "").strip()
    try:
        value = float(text) if text else default
    except ValueError:
        return default
    return value if value > 0 else default


def cpu_seconds() -> int:
    return max(1, int(env_positive("DFKD_MAX_CPU_HOURS", DEFAULT_CPU_HOURS) * 3600))


def enter(box: Box) -> BoxState:
    """Confine this process (all of it, for good) to `box`. Idempotent: a second call returns
    the box already entered. Raises ModelError when a user's model may not run unconfined here."""
    global _state
    if _state is not None:
        return _state
    state = BoxState(landlock_abi=landlock_abi())
    if state.landlock_abi == 0:
        refuse_unconfined()
    if sys.platform != "linux" or _libc is None:  # no prctl / seccomp / Landlock here: rlimits were never the box alone
        state.note = "not Linux: no box"
        _state = state
        return state
    if _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise ModelError(f"The model's box cannot be set up: prctl(PR_SET_NO_NEW_PRIVS) failed "
                         f"({os.strerror(ctypes.get_errno())}).")
    state.no_new_privs = True
    limits = {}
    if box.memory_bytes is not None:
        limits["RLIMIT_AS"] = _set_limit(resource.RLIMIT_AS, _mapped_bytes() + int(box.memory_bytes) + MEMORY_SLACK_BYTES)
    if box.cpu_seconds is not None:
        signal.signal(signal.SIGXCPU, _cpu_exceeded)
        limits["RLIMIT_CPU"] = _set_limit(resource.RLIMIT_CPU, int(box.cpu_seconds), hard_extra=10)  # then SIGKILL
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past RLIMIT_FSIZE fails with EFBIG, no kill
    limits["RLIMIT_FSIZE"] = _set_limit(resource.RLIMIT_FSIZE, int(box.file_bytes))
    limits["RLIMIT_NOFILE"] = _set_limit(resource.RLIMIT_NOFILE, int(box.open_files))
    state.limits = limits
    try:
        state.seccomp = _seccomp()
    except OSError as exc:
        state.note = f"seccomp unavailable ({exc.strerror}); "
    if state.landlock_abi:
        try:
            _landlock(box, state.landlock_abi)
            state.landlock = True
        except OSError as exc:
            raise ModelError(f"The model's box cannot be set up: {exc.strerror}.") from None
        if state.landlock_abi < 4:
            state.note += "Landlock ABI < 4: TCP is denied by the seccomp filter only; "
    _state = state
    return state


def exposed() -> bool:
    """The dashboard listens beyond loopback: DFKD_EXPOSED=1 (what its workers inherit), or, in the
    Streamlit server itself, a server.address that is no loopback address."""
    if os.environ.get("DFKD_EXPOSED", "") == "1":
        return True
    config = sys.modules.get("streamlit.config")  # in the server (looked up, never imported here)
    if config is not None:
        try:
            address = str(config.get_option("server.address") or "")
        except Exception:  # noqa: BLE001 - no such option: assume exposed
            return True
        if address not in ("127.0.0.1", "localhost", "::1"):
            os.environ["DFKD_EXPOSED"] = "1"  # the workers it starts inherit it
            return True
    return False


def refuse_unconfined() -> None:
    """No Landlock here: say so once; refuse on an exposed server unless the operator opted in."""
    global _warned
    if os.environ.get("DFKD_ALLOW_UNCONFINED_MODELS", "") == "1":
        opted = True
    elif exposed():
        raise ModelError("This kernel has no Landlock, so a user's model cannot be confined, and this dashboard is "
                         "exposed beyond loopback: user models are refused (an operator may set "
                         "DFKD_ALLOW_UNCONFINED_MODELS=1 to accept the risk).")
    else:
        opted = False
    if not _warned:
        _warned = True
        warnings.warn("This kernel has no Landlock: a user's model runs with only rlimits and a seccomp filter "
                      + ("(DFKD_ALLOW_UNCONFINED_MODELS=1)." if opted else "(loopback only)."), RuntimeWarning, stacklevel=3)
        print("warning: this kernel has no Landlock: user models run with only rlimits and a seccomp filter.",
              file=sys.stderr, flush=True)


def memory_budget_bytes() -> int:
    from ..caps import memory_budget_gb

    return int(memory_budget_gb() * 1e9)


def model_box(model_paths: list[str], write: list[str] | None = None, *, memory: bool = True) -> Box:
    """The box of a process about to load a user's model: read the system and the model's files,
    write only `write`, memory capped by DFKD_MAX_MEMORY_GB (unless a GPU is in use: CUDA maps
    far more address space than it uses, so RLIMIT_AS would stop it)."""
    reads = system_reads() + _with_cards(model_paths)
    data_dir = os.environ.get("DFKD_DATA_DIR", "")
    if data_dir:
        reads.append(str(Path(data_dir).expanduser().resolve()))
    return Box(read=reads, write=[str(Path(p).resolve()) for p in (write or [])],
               memory_bytes=memory_budget_bytes() if memory else None, cpu_seconds=cpu_seconds())


def _with_cards(paths: list[str]) -> list[str]:
    """The files, resolved, and each stored file's card (NAME.json: the name the user gave it)."""
    out = []
    for p in paths:
        if p:
            out.append(str(Path(p).resolve()))
            out.append(str(Path(p).resolve()) + ".json")
    return out


def enter_for_model(model_paths: list[str]) -> BoxState:
    """Confine this process before it loads a user's model: with its plan (the CLI declared the
    folders it still writes), or already confined (a run's worker). A process with neither (the
    Streamlit server) never loads a user's model: ModelError."""
    if _state is not None:
        return _state
    if _plan is None:
        raise ModelError("A user's model is only loaded inside a confined process (a run's worker, the CLI, or the "
                         "model checker), never in this one.")
    box = Box(read=_plan.read + _with_cards(model_paths), write=_plan.write,
              devices=_plan.devices, memory_bytes=_plan.memory_bytes, cpu_seconds=_plan.cpu_seconds,
              file_bytes=_plan.file_bytes, open_files=_plan.open_files)
    return enter(box)


def describe() -> str:
    """One line on this process's box (for logs and the worker's probe)."""
    s = _state
    if s is None:
        return "not confined"
    parts = [f"Landlock ABI {s.landlock_abi}" if s.landlock else "no Landlock",
             "seccomp (no sockets)" if s.seccomp else "no seccomp", "no new privileges"]
    parts += [f"{k}={v}" for k, v in s.limits.items()]
    return "confined: " + ", ".join(parts) + (f" ({s.note.rstrip('; ')})" if s.note else "")
