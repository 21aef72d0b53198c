"""Process helpers for the tests that start scripts/run.sh: its process tree, read from /proc."""
import os
import signal


def _table():
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                cmd = fh.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except (OSError, IndexError, ValueError):
            continue
        table[int(entry)] = (ppid, cmd)
    return table


def tree(pid):
    """{pid: command line} of every live descendant of `pid`."""
    table = _table()
    children = {}
    for child, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(child)
    found, todo = {}, list(children.get(pid, []))
    while todo:
        p = todo.pop()
        found[p] = table[p][1]
        todo.extend(children.get(p, []))
    return found


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def workers(pid):
    """{pid: command line} of the rqworker main processes under `pid` (not their work horses)."""
    procs = tree(pid)
    table = _table()
    return {p: cmd for p, cmd in procs.items() if "rqworker" in cmd and "rqworker" not in table.get(
        table[p][0], (0, ""))[1]} if procs else {}


def kill_all(pids):
    for p in pids:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
