"""What a process costs, read from /proc: peak RSS, CPU per thread, the machine's busy time.

Linux only, like the benchmarks that use it (`benchmarks/scale.py`).
"""

from __future__ import annotations

import os


def peak_rss_mb(pid: int | str = "self") -> float:
    """The process's peak RSS since its exec (VmHWM). Not `ru_maxrss`: Linux carries that
    over an exec from the forked copy of the parent, so every child would report at least
    the benchmark's own size."""
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:  # exited between polls
        pass
    return 0.0


def thread_cpu_s(pid: int) -> dict[int, float]:
    """CPU seconds of each live thread of the process so far, by thread id (the main
    thread's id is the pid). Threads that ended are gone from /proc: sample while running
    and keep the largest value per id (`merge_threads`)."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[int, float] = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as handle:
                stat = handle.read()
        except OSError:  # the thread ended meanwhile
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        out[int(tid)] = (int(fields[11]) + int(fields[12])) / tick
    return out


def merge_threads(seen: dict[int, float], now: dict[int, float]) -> dict[int, float]:
    """Per-thread CPU so far: the latest sample, and the last one of threads that ended."""
    return {tid: max(seen.get(tid, 0.0), now.get(tid, 0.0)) for tid in seen.keys() | now.keys()}


def thread_summary(pid: int, threads: dict[int, float], shown: int = 3) -> dict[str, float]:
    """The main thread's CPU seconds and the busiest other threads' (Bytewax's worker and,
    in cluster mode, its communication threads), largest first."""
    others = sorted((cpu for tid, cpu in threads.items() if tid != pid), reverse=True)
    summary = {"main": round(threads.get(pid, 0.0), 1)}
    summary.update({f"thread {n + 1}": round(cpu, 1) for n, cpu in enumerate(others[:shown])})
    rest = sum(others[shown:])
    if rest:
        summary["others"] = round(rest, 1)
    return summary


def machine_busy_s() -> float:
    """CPU seconds the whole machine has been busy (all cores, everyone's), from /proc/stat."""
    with open("/proc/stat") as handle:
        fields = [int(x) for x in handle.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
