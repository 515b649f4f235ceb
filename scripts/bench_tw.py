#!/usr/bin/env python3
"""TIME-WAIT pressure (`./scripts/bench.sh --tw`): the per-second sampler and the post-processor.

  bench_tw.py sample --cpu N --kind linux|xtcp --stats FILE --out FILE --max-s S
                     --pids P[,P...]
      Once a second, appends one JSON line: monotonic time, the server core's /proc/stat line,
      the `tw_sock_TCP` line of /proc/slabinfo (global), the `tw` count of this network
      namespace's /proc/net/sockstat (run it inside the server's namespace), the CPU ticks
      of the server process and its side's NAPI kthreads (/proc/P/stat), and the fields of the server's stats file that
      matter here. Stops on SIGTERM/SIGINT or after S seconds.

  bench_tw.py join --out DIR [--target N] NAME=SAMPLES,LOADGEN_JSON ...
      Turns each server's raw samples into per-second samples
      {t, occupancy, rate, us_per_conn, bytes_per_entry, tw_bytes, busy, work}, writes
      DIR/tw.json and DIR/tw.svg (DIR/tw.png where rsvg-convert exists), prints the summary.

  bench_tw.py selftest
      Checks the arithmetic on a canned input (run by scripts/test.sh).

Accounting is bench.sh's `cpu` object, per interval: busy = the server core's non-idle share
of /proc/stat (everything but idle and iowait); for xtcp, work = busy less the engine's empty
spinning (its stats file's per-core loop_ns - busy_ns - wait_ns share); for Linux, work = busy.
us_per_conn = work x interval / connections the server completed in the interval (Linux:
the stats file's `accepted`; xtcp: `passive_opens`). Both come from the same sample, so they
are aligned; the load generator's own timeline (client view) is kept beside them in tw.json.
"""

import json
import os
import signal
import statistics
import subprocess
import sys
import time

# ---- sampling ------------------------------------------------------------------------------


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def proc_stat_cpu(text, cpu):
    """The jiffies of `cpuN` as a list of ints (user nice system idle iowait irq softirq
    steal ...), or None."""
    if text is None:
        return None
    want = "cpu%d" % cpu
    for line in text.splitlines():
        f = line.split()
        if f and f[0] == want:
            try:
                return [int(x) for x in f[1:]]
            except ValueError:
                return None
    return None


def slab_tw(text):
    """(active_objs, objsize) of the tw_sock_TCP slab, or None."""
    if text is None:
        return None
    for line in text.splitlines():
        f = line.split()
        if len(f) >= 4 and f[0] == "tw_sock_TCP":
            try:
                return [int(f[1]), int(f[3])]
            except ValueError:
                return None
    return None


def sockstat_tw(text):
    if text is None:
        return None
    for line in text.splitlines():
        if line.startswith("TCP:"):
            f = line.split()
            for i, k in enumerate(f[:-1]):
                if k == "tw":
                    try:
                        return int(f[i + 1])
                    except ValueError:
                        return None
    return None


def snmp_passive_opens(text):
    """`Tcp: PassiveOpens` of /proc/net/snmp (this namespace's kernel count), or None."""
    if text is None:
        return None
    lines = [l.split() for l in text.splitlines() if l.startswith("Tcp:")]
    if len(lines) < 2 or "PassiveOpens" not in lines[0]:
        return None
    try:
        return int(lines[1][lines[0].index("PassiveOpens")])
    except (ValueError, IndexError):
        return None


def stats_fields(text):
    """The fields of a server stats file used here (missing ones are None)."""
    try:
        v = json.loads(text) if text else None
    except ValueError:
        v = None
    if not isinstance(v, dict):
        return None
    cores = v.get("cores") if isinstance(v.get("cores"), list) else []

    def core_sum(k):
        vals = [c.get(k) for c in cores if isinstance(c, dict)]
        vals = [x for x in vals if isinstance(x, (int, float))]
        return sum(vals) if vals else None

    cap = core_sum("time_wait_capacity")
    return {
        "time_wait": v.get("time_wait"),
        "accepted": v.get("accepted"),
        "passive_opens": v.get("passive_opens"),
        "time_wait_bytes_per_entry": v.get("time_wait_bytes_per_entry"),
        "time_wait_reserved_bytes": v.get("time_wait_reserved_bytes"),
        "time_wait_capacity": cap,
        "loop_ns": core_sum("loop_ns"),
        "busy_ns": core_sum("busy_ns"),
        "wait_ns": core_sum("wait_ns"),
        "cores_n": len(cores),
    }


def proc_ticks(text):
    """utime + stime (clock ticks, all threads) from a /proc/PID/stat line, or None."""
    if not text or ")" not in text:
        return None
    f = text[text.rindex(")") + 2:].split()
    try:
        return int(f[11]) + int(f[12])
    except (ValueError, IndexError):
        return None


def pids_ticks(pids):
    """Summed CPU ticks of the given processes/threads (None if any is unreadable)."""
    if not pids:
        return None
    total = 0
    for p in pids:
        t = proc_ticks(read("/proc/%d/stat" % p))
        if t is None:
            return None
        total += t
    return total


def sample_once(cpu, stats_path, pids=()):
    return {
        "proc_ticks": pids_ticks(pids),
        "t": round(time.monotonic(), 4),
        "cpu": proc_stat_cpu(read("/proc/stat"), cpu),
        "slab": slab_tw(read("/proc/slabinfo")),
        "sockstat_tw": sockstat_tw(read("/proc/net/sockstat")),
        "snmp_passive": snmp_passive_opens(read("/proc/net/snmp")),
        "stats": stats_fields(read(stats_path)),
    }


def cmd_sample(args):
    opts = parse_opts(args, {"--cpu": int, "--kind": str, "--stats": str, "--out": str,
                             "--max-s": float,
                             "--pids": lambda v: [int(x) for x in v.split(",") if x]})
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    end = time.monotonic() + opts["--max-s"]
    nxt = time.monotonic()
    with open(opts["--out"], "a") as out:
        while not stop and time.monotonic() < end:
            s = sample_once(opts["--cpu"], opts["--stats"], opts["--pids"])
            s["kind"] = opts["--kind"]
            out.write(json.dumps(s) + "\n")
            out.flush()
            nxt += 1.0
            while not stop and time.monotonic() < nxt:
                time.sleep(min(0.05, max(0.0, nxt - time.monotonic())))
        # One last sample at the stop, so the final interval is measured too.
        s = sample_once(opts["--cpu"], opts["--stats"], opts["--pids"])
        s["kind"] = opts["--kind"]
        out.write(json.dumps(s) + "\n")


# ---- post-processing -----------------------------------------------------------------------

CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def busy_share(a, b):
    """Non-idle share of the jiffies between two /proc/stat cpu lines (idle and iowait are
    fields 3 and 4), as in bench.sh's cpu object."""
    if not a or not b or len(a) < 5 or len(b) < 5:
        return None
    d = [y - x for x, y in zip(a, b)]
    total = sum(d[:8])
    if total <= 0:
        return None
    return max(0.0, min(1.0, (total - d[3] - d[4]) / total))


def spin_share(a, b):
    """The xtcp engine's share of loop time spent spinning on empty rings between two stats
    readings (None when the file was not rewritten or has no work counters)."""
    try:
        lp = b["loop_ns"] - a["loop_ns"]
        busy = b["busy_ns"] - a["busy_ns"]
        wait = b["wait_ns"] - a["wait_ns"]
    except (TypeError, KeyError):
        return None
    if lp <= 0:
        return None
    return max(0.0, min(1.0, (lp - busy - wait) / lp))


def completed(kind, s):
    """Connections the server completed so far: Linux, the namespace's kernel `PassiveOpens`
    (current at the sample; the kernel-server's own stats file is rewritten only once a
    second), else its `accepted`; xtcp, the stats file's `passive_opens`."""
    st = s.get("stats") or {}
    if kind == "linux":
        v = s.get("snmp_passive")
        return v if v is not None else st.get("accepted")
    return st.get("passive_opens")


def counted_interval(kind, a, b):
    """The time the connection counts of two samples span: the sampler's interval, except
    for xtcp, whose counters are a snapshot the engine takes every 200 ms: there the span is
    the engine's own loop time between the two snapshots (per core), so rate and
    µs/connection do not alias against the snapshot period. None: the file was not
    rewritten."""
    dt = b["t"] - a["t"]
    if kind == "linux":
        return dt
    sa, sb = a.get("stats") or {}, b.get("stats") or {}
    try:
        span = (sb["loop_ns"] - sa["loop_ns"]) / max(1, sb.get("cores_n") or 1) / 1e9
    except (TypeError, KeyError):
        return dt
    return span if span > 0 else None


def occupancy(kind, s):
    if kind == "linux":
        return s.get("sockstat_tw")
    st = s.get("stats") or {}
    return st.get("time_wait")


def samples_from_raw(kind, raw):
    """Per-interval samples from consecutive raw samples. Intervals in which the server
    completed no connection (before the load generator starts, after it stops) are left out,
    and so are the first and last intervals with connections (partial: the load starts or
    stops inside them) when at least 4 remain.
    Linux memory: (tw_sock_TCP active objects - the count at the first sample) x object size;
    the slab is global (other namespaces' TIME-WAIT sockets count too) and the ehash buckets
    are not counted. xtcp memory: occupancy x (reserved bytes / capacity)."""
    out = []
    if not raw:
        return out
    t0 = raw[0]["t"]
    slab0 = raw[0].get("slab")
    for a, b in zip(raw, raw[1:]):
        ca, cb = completed(kind, a), completed(kind, b)
        dt = counted_interval(kind, a, b)
        if dt is None or dt <= 0 or ca is None or cb is None:
            continue
        conns = cb - ca
        if conns <= 0:
            continue
        busy = busy_share(a.get("cpu"), b.get("cpu"))
        if busy is None:
            continue
        work = busy
        if kind != "linux":
            spin = spin_share(a.get("stats") or {}, b.get("stats") or {})
            work = max(0.0, busy - (spin or 0.0))
        occ = occupancy(kind, b)
        st = b.get("stats") or {}
        # The CPU share of the server process (all its threads) plus the server side's NAPI
        # kthreads: when the core's busy share is well above it, something else ran on the
        # core (another build on a shared machine).
        proc = None
        if a.get("proc_ticks") is not None and b.get("proc_ticks") is not None:
            proc = round((b["proc_ticks"] - a["proc_ticks"]) / CLK_TCK / (b["t"] - a["t"]), 3)
        if kind == "linux":
            slab = b.get("slab")
            bpe = slab[1] if slab else None
            tw_bytes = None
            if slab and slab0:
                tw_bytes = max(0, slab[0] - slab0[0]) * slab[1]
        else:
            cap, res = st.get("time_wait_capacity"), st.get("time_wait_reserved_bytes")
            bpe = round(res / cap, 2) if cap and res else st.get("time_wait_bytes_per_entry")
            tw_bytes = round(occ * bpe) if occ is not None and bpe else None
        out.append({
            "t": round(b["t"] - t0, 2),
            "occupancy": occ,
            "rate": round(conns / dt, 1),
            "us_per_conn": round(work * dt * 1e6 / conns, 3),
            "bytes_per_entry": bpe,
            "tw_bytes": tw_bytes,
            "busy": round(busy, 3),
            "work": round(work, 3),
            "server_proc": proc,
            "us_per_conn_own": (round(proc * dt * 1e6 / conns, 3) if proc is not None else None),
        })
    # The first and the last interval hold the load generator's start (and warm-up) and its
    # stop: partial seconds that would read as a low rate. Left out when there are enough.
    if len(out) >= 4:
        out = out[1:-1]
    return out


def rate_ratio(samples):
    """Median rate of the highest-occupancy quarter of the samples over that of the lowest
    quarter (at least one sample each), with both occupancy ranges."""
    s = sorted((x for x in samples if x["occupancy"] is not None), key=lambda x: x["occupancy"])
    if len(s) < 2:
        return None
    q = max(1, len(s) // 4)
    lo, hi = s[:q], s[-q:]
    lo_rate = statistics.median(x["rate"] for x in lo)
    hi_rate = statistics.median(x["rate"] for x in hi)
    return {
        "low_occupancy": [lo[0]["occupancy"], lo[-1]["occupancy"]],
        "low_rate": lo_rate,
        "high_occupancy": [hi[0]["occupancy"], hi[-1]["occupancy"]],
        "high_rate": hi_rate,
        "ratio": round(hi_rate / lo_rate, 3) if lo_rate else None,
    }


def load_raw(path):
    raw = []
    text = read(path) or ""
    for line in text.splitlines():
        try:
            raw.append(json.loads(line))
        except ValueError:
            continue  # a line cut by a kill: skipped
    return raw


def server_entry(name, samples_path, loadgen_path, target):
    kind = "linux" if name == "linux" else "xtcp"
    samples = samples_from_raw(kind, load_raw(samples_path))
    lg = None
    try:
        with open(loadgen_path) as f:
            lg = json.load(f)
    except (OSError, ValueError):
        pass
    bpes = [x["bytes_per_entry"] for x in samples if x["bytes_per_entry"]]
    us = [x["us_per_conn"] for x in samples]
    e = {
        "server": name,
        "prefill": (target if kind == "xtcp" else 0),
        "prefill_note": (None if kind == "xtcp" or not target else
                         "no prefill for Linux: the kernel offers no way to insert TIME-WAIT "
                         "sockets; its occupancy is what its rate reaches"),
        "memory_note": ("tw_sock_TCP slab objects (global /proc/slabinfo: delta from the "
                        "run's first sample) x object size; the ehash buckets are not counted"
                        if kind == "linux" else
                        "occupancy x the table's reserved bytes per entry of capacity (32-byte "
                        "ring slot + its share of the u32 index)"),
        "samples": samples,
        "bytes_per_entry": (bpes[-1] if bpes else None),
        "median_us_per_conn": (round(statistics.median(us), 3) if us else None),
        "max_occupancy": max((x["occupancy"] or 0 for x in samples), default=None),
        "rate_ratio": rate_ratio(samples),
        "loadgen": None,
    }
    if lg:
        e["loadgen"] = {
            "handshakes_per_s": lg.get("rates", {}).get("handshakes_per_s"),
            "time_wait_server_max": lg.get("time_wait", {}).get("server_max"),
            "bound": lg.get("bound"),
            "us_per_conn": ((lg.get("cpu") or {}).get("server") or {}).get("us_per_conn"),
            "timeline": [{"t": x.get("t"), "handshakes": x.get("handshakes"),
                          "time_wait_server": x.get("time_wait_server")}
                         for x in lg.get("timeline", [])],
        }
    return e


# ---- plot (plain SVG: no plotting library needed) -------------------------------------------

COLORS = {"linux": "#1f77b4", "xtcp": "#d62728"}


def fmt_num(v):
    if v >= 1e6:
        return "%gM" % round(v / 1e6, 2)
    if v >= 1e3:
        return "%gK" % round(v / 1e3, 1)
    return "%g" % round(v, 2)


def nice_max(v):
    if v <= 0:
        return 1.0
    mag = 10 ** len(str(int(v))) / 10
    for m in (1, 2, 2.5, 5, 10):
        if m * mag >= v:
            return m * mag
    return 10 * mag


def esc(s):
    return str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def panel(x0, y0, w, h, title, xlabel, series, key):
    """A scatter-and-line panel of `key` against occupancy for every server."""
    pts = [(p["occupancy"], p[key]) for _, s in series for p in s
           if p["occupancy"] is not None and p[key] is not None]
    xmax = nice_max(max((p[0] for p in pts), default=1))
    # The y axis stops at 4x the median so one disturbed second does not flatten the rest;
    # points above it are drawn hollow at the top edge.
    ys = [p[1] for p in pts]
    ymax = nice_max(min(max(ys, default=1), 4 * statistics.median(ys) if ys else 1))
    o = ['<g font-family="sans-serif" font-size="11">',
         '<text x="%d" y="%d" font-size="13">%s</text>' % (x0, y0 - 8, esc(title)),
         '<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#888"/>' % (x0, y0, w, h)]
    for i in range(6):
        gy = y0 + h - h * i / 5
        gx = x0 + w * i / 5
        o.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#eee"/>' % (x0, gy, x0 + w, gy))
        o.append('<text x="%d" y="%.1f" text-anchor="end">%s</text>' % (x0 - 4, gy + 4, fmt_num(ymax * i / 5)))
        o.append('<text x="%.1f" y="%d" text-anchor="middle">%s</text>' % (gx, y0 + h + 14, fmt_num(xmax * i / 5)))
    o.append('<text x="%d" y="%d" text-anchor="middle">%s</text>' % (x0 + w / 2, y0 + h + 30, esc(xlabel)))
    for name, s in series:
        c = COLORS.get("linux" if name == "linux" else "xtcp", "#333")
        xy = [(x0 + w * p["occupancy"] / xmax, y0 + h - h * min(p[key], ymax) / ymax,
               p[key] > ymax) for p in s if p["occupancy"] is not None and p[key] is not None]
        if len(xy) > 1:
            o.append('<polyline fill="none" stroke="%s" stroke-opacity="0.5" points="%s"/>' % (
                c, " ".join("%.1f,%.1f" % q[:2] for q in xy)))
        for qx, qy, off in xy:
            if off:
                o.append('<circle cx="%.1f" cy="%.1f" r="3.5" fill="white" stroke="%s"/>' % (qx, qy, c))
            else:
                o.append('<circle cx="%.1f" cy="%.1f" r="2.5" fill="%s"/>' % (qx, qy, c))
    o.append("</g>")
    return o


def bars(x0, y0, w, h, title, entries):
    vals = [(e["server"], e["bytes_per_entry"]) for e in entries if e["bytes_per_entry"]]
    ymax = nice_max(max((v for _, v in vals), default=1))
    o = ['<g font-family="sans-serif" font-size="11">',
         '<text x="%d" y="%d" font-size="13">%s</text>' % (x0, y0 - 8, esc(title)),
         '<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#888"/>' % (x0, y0, w, h)]
    bw = w / max(1, len(vals)) * 0.5
    for i, (name, v) in enumerate(vals):
        bx = x0 + w * (i + 0.25) / max(1, len(vals))
        bh = h * v / ymax
        c = COLORS.get("linux" if name == "linux" else "xtcp", "#333")
        o.append('<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>' % (bx, y0 + h - bh, bw, bh, c))
        o.append('<text x="%.1f" y="%.1f" text-anchor="middle">%s B</text>' % (bx + bw / 2, y0 + h - bh - 4, fmt_num(v)))
        o.append('<text x="%.1f" y="%d" text-anchor="middle">%s</text>' % (bx + bw / 2, y0 + h + 14, esc(name)))
    o.append("</g>")
    return o


def svg(entries, note):
    series = [(e["server"], e["samples"]) for e in entries]
    W, H = 1200, 420
    o = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d">' % (W, H),
         '<rect width="100%" height="100%" fill="white"/>',
         '<text x="20" y="22" font-family="sans-serif" font-size="15">TIME-WAIT pressure: '
         'per-second samples against the server\'s TIME-WAIT entries (%s)</text>' % esc(note)]
    o += panel(70, 60, 400, 280, "connections/s", "TIME-WAIT entries", series, "rate")
    o += panel(540, 60, 400, 280, "server CPU µs per connection", "TIME-WAIT entries", series,
               "us_per_conn")
    o += bars(1010, 60, 170, 280, "bytes per TIME-WAIT entry", entries)
    lx = 70
    for name, _ in series:
        c = COLORS.get("linux" if name == "linux" else "xtcp", "#333")
        o.append('<circle cx="%d" cy="395" r="5" fill="%s"/>' % (lx, c))
        o.append('<text x="%d" y="399" font-family="sans-serif" font-size="12">%s</text>' % (lx + 10, esc(name)))
        lx += 120
    o.append('<text x="%d" y="399" font-family="sans-serif" font-size="12" fill="#555">'
             'hollow: above the axis (4x the median)</text>' % (lx + 20))
    o.append("</svg>")
    return "\n".join(o) + "\n"


def summary_lines(entries):
    lines = []
    for e in entries:
        r = e["rate_ratio"]
        if r:
            lines.append(
                "tw %-6s rate at highest occupancy (%s-%s entries) / at lowest (%s-%s): "
                "%s/s / %s/s = %s; bytes per entry %s; median %s us/conn" % (
                    e["server"], fmt_num(r["high_occupancy"][0]), fmt_num(r["high_occupancy"][1]),
                    fmt_num(r["low_occupancy"][0]), fmt_num(r["low_occupancy"][1]),
                    fmt_num(r["high_rate"]), fmt_num(r["low_rate"]), r["ratio"],
                    e["bytes_per_entry"], e["median_us_per_conn"]))
        else:
            lines.append("tw %-6s too few samples (%d)" % (e["server"], len(e["samples"])))
        if e["prefill_note"]:
            lines.append("tw %-6s %s" % (e["server"], e["prefill_note"]))
    return lines


def cmd_join(args):
    out_dir, target, runs, cmd = None, 0, [], os.environ.get("BENCH_CMD")
    i = 0
    while i < len(args):
        if args[i] == "--out":
            out_dir = args[i + 1]
            i += 2
        elif args[i] == "--target":
            target = int(args[i + 1])
            i += 2
        else:
            name, _, files = args[i].partition("=")
            samples, _, lg = files.partition(",")
            runs.append((name, samples, lg))
            i += 1
    if not out_dir or not runs:
        sys.exit("usage: bench_tw.py join --out DIR [--target N] NAME=SAMPLES,LOADGEN_JSON ...")
    entries = [server_entry(n, s, l, target) for n, s, l in runs]
    doc = {"command": cmd, "prefill_target": target, "servers": entries}
    with open(os.path.join(out_dir, "tw.json"), "w") as f:
        json.dump(doc, f, indent=1)
    note = "xtcp prefilled to %s" % fmt_num(target) if target else "no prefill"
    path = os.path.join(out_dir, "tw.svg")
    with open(path, "w") as f:
        f.write(svg(entries, note))
    try:
        subprocess.run(["rsvg-convert", "-b", "white", "-o", path[:-3] + "png", path],
                       check=True, stderr=subprocess.DEVNULL)
    except (OSError, subprocess.CalledProcessError):
        pass
    for line in summary_lines(entries):
        print(line)
    return doc


# ---- self-test -----------------------------------------------------------------------------


def cmd_selftest(_args):
    import tempfile
    # Linux: 3 samples a second apart; the core 50 % busy; 10 K then 20 K accepted.
    lin = [
        {"t": 100.0, "proc_ticks": 7, "cpu": [0, 0, 0, 0, 0, 0, 0, 0], "slab": [1000, 256],
         "sockstat_tw": 0,
         "snmp_passive": 7, "stats": {"accepted": 0}},
        {"t": 101.0, "proc_ticks": 7 + CLK_TCK * 2 // 5, "cpu": [40, 0, 10, 50, 0, 0, 0, 0],
         "slab": [11000, 256],
         "sockstat_tw": 10000, "snmp_passive": 10007, "stats": {"accepted": 0}},
        {"t": 102.0, "cpu": [80, 0, 20, 100, 0, 0, 0, 0], "slab": [21000, 256],
         "sockstat_tw": 20000, "snmp_passive": 15007, "stats": {"accepted": 15000}},
    ]
    s = samples_from_raw("linux", lin)
    assert len(s) == 2, s
    assert s[0]["rate"] == 10000 and s[0]["us_per_conn"] == 50.0, s
    assert s[0]["server_proc"] == 0.4 and s[1]["server_proc"] is None, s
    assert s[0]["us_per_conn_own"] == 40.0 and s[1]["us_per_conn_own"] is None, s
    assert s[1]["rate"] == 5000 and s[1]["us_per_conn"] == 100.0, s
    assert s[1]["tw_bytes"] == 20000 * 256 and s[1]["bytes_per_entry"] == 256, s
    # xtcp: core 100 % busy, the engine spun 60 % of its loop: work 0.4; 40 K conns in the
    # 1 s of loop time between its snapshots (the sampler's interval was 1.25 s).
    st = lambda n, lp, b, w, tw: {"passive_opens": n, "time_wait": tw, "loop_ns": lp,
                                  "busy_ns": b, "wait_ns": w, "time_wait_capacity": 10_000_000,
                                  "time_wait_reserved_bytes": 10_000_000 * 32 + (1 << 24) * 4,
                                  "time_wait_bytes_per_entry": 39}
    xt = [
        {"t": 5.0, "cpu": [0] * 8, "stats": st(0, 0, 0, 0, 0)},
        {"t": 6.25, "cpu": [100, 0, 0, 0, 0, 0, 0, 0],
         "stats": st(40000, 10**9, 3 * 10**8, 10**8, 40000)},
        {"t": 7.0, "cpu": [200, 0, 0, 0, 0, 0, 0, 0],
         "stats": st(40000, 10**9, 3 * 10**8, 10**8, 80000)},
    ]
    s = samples_from_raw("xtcp", xt)
    assert len(s) == 1, "the interval without a new snapshot is left out: %s" % s
    assert s[0]["rate"] == 40000, s
    assert s[0]["work"] == 0.4 and s[0]["us_per_conn"] == 10.0, s
    assert s[0]["bytes_per_entry"] == 38.71 and s[0]["tw_bytes"] == round(40000 * 38.71), s
    # Edge intervals (the load starting and stopping inside them) are left out.
    many = [{"t": float(i), "cpu": [100 * i] + [0] * 7, "sockstat_tw": i, "snmp_passive": 10 * i * i}
            for i in range(7)]
    s = samples_from_raw("linux", many)
    assert [x["occupancy"] for x in s] == [2, 3, 4, 5], s
    r = rate_ratio([{"occupancy": o, "rate": r} for o, r in
                    [(1, 100), (2, 100), (3, 90), (4, 80), (5, 80), (6, 80), (7, 70), (8, 70)]])
    assert r["ratio"] == 0.7 and r["low_occupancy"] == [1, 2], r
    assert busy_share([0] * 8, [0] * 8) is None
    assert proc_stat_cpu("cpu  1 2\ncpu1 1 2 3 4 5 6 7 8\n", 1) == [1, 2, 3, 4, 5, 6, 7, 8]
    assert slab_tw("tw_sock_TCP 128 192 256 16 1 : tunables\n") == [128, 256]
    assert sockstat_tw("TCP: inuse 5 orphan 0 tw 42 alloc 6 mem 1\n") == 42
    assert stats_fields("{not json") is None
    assert proc_ticks("12 (a b) S 1 2 3 4 5 6 7 8 9 10 300 45 0 0") == 345
    assert proc_ticks("garbage") is None
    assert snmp_passive_opens("Tcp: RtoAlgorithm PassiveOpens\nTcp: 1 99\n") == 99
    assert snmp_passive_opens("Tcp: x\n") is None
    # join on the canned input writes tw.json and a plot.
    with tempfile.TemporaryDirectory() as d:
        for name, raw in (("linux", lin), ("xtcp", xt)):
            with open(os.path.join(d, name + ".tw.jsonl"), "w") as f:
                for x in raw:
                    f.write(json.dumps(x) + "\n")
                f.write('{"t": 8.0, "cpu"')  # a line cut by a kill
        with open(os.path.join(d, "lg.json"), "w") as f:
            json.dump({"rates": {"handshakes_per_s": 9000.0}, "time_wait": {"server_max": 20000},
                       "timeline": [{"t": 1.0, "handshakes": 9000, "time_wait_server": 9000}]}, f)
        doc = cmd_join(["--out", d, "--target", "1000",
                        "linux=%s,%s" % (os.path.join(d, "linux.tw.jsonl"), os.path.join(d, "lg.json")),
                        "xtcp=%s,%s" % (os.path.join(d, "xtcp.tw.jsonl"), os.path.join(d, "none.json"))])
        got = json.load(open(os.path.join(d, "tw.json")))
        assert got == json.loads(json.dumps(doc))
        for e in got["servers"]:
            for x in e["samples"]:
                assert set(["occupancy", "rate", "us_per_conn", "bytes_per_entry", "t"]) <= set(x)
        assert got["servers"][0]["prefill_note"] and got["servers"][1]["prefill"] == 1000
        assert got["servers"][0]["loadgen"]["timeline"][0]["time_wait_server"] == 9000
        text = open(os.path.join(d, "tw.svg")).read()
        assert text.startswith("<svg") and text.count("<circle") >= 3
    print("bench_tw.py selftest: ok")


def parse_opts(args, spec):
    opts = {}
    i = 0
    while i < len(args):
        if args[i] not in spec or i + 1 >= len(args):
            sys.exit("bench_tw.py: bad option %s" % args[i])
        opts[args[i]] = spec[args[i]](args[i + 1])
        i += 2
    missing = [k for k in spec if k not in opts]
    if missing:
        sys.exit("bench_tw.py: missing %s" % ", ".join(missing))
    return opts


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in ("sample", "join", "selftest"):
        sys.exit(__doc__)
    {"sample": cmd_sample, "join": cmd_join, "selftest": cmd_selftest}[sys.argv[1]](sys.argv[2:])
