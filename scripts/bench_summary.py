#!/usr/bin/env python3
"""The table and summary.md of a scripts/bench.sh run.

    bench_summary.py OUT_DIR ELAPSED_S WORKLOADS SERVERS

Reads OUT_DIR/<workload>-<server>-<max|lat>-r<N>.json (the load generator's reports) and
<tag>.napi.txt (the NAPI kthreads' CPU time before and after each run), prints the table on
stdout and writes OUT_DIR/summary.md. Every figure is the median over the repetitions, with
the min-max range where there was more than one.
"""
import glob
import json
import os
import platform
import re
import statistics
import sys


def load_runs(out, wl, server, phase, with_paths=False):
    runs = []
    for p in sorted(glob.glob(os.path.join(out, f"{wl}-{server}-{phase}-r*.json"))):
        if p.endswith(".server.json"):
            continue
        try:
            runs.append((p, json.load(open(p))))
        except (OSError, ValueError):
            pass
    return runs if with_paths else [r for _, r in runs]


def set_ceiling_pct(out, wl, server, ceiling):
    """Writes `ceiling_pct` (this run's rate as a percentage of the median ceiling rate)
    into every max run JSON of `server`."""
    for p, r in load_runs(out, wl, server, "max", with_paths=True):
        r["ceiling_pct"] = round(rate_of(r) / ceiling * 100, 1) if ceiling else None
        with open(p, "w") as f:
            json.dump(r, f, indent=2)
            f.write("\n")


def rate_of(r):
    k = "transactions_per_s" if r["workload"] == "rr" else "handshakes_per_s"
    return r["rates"][k]


def med(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def spread(vals, fmt="{:.0f}"):
    """median [min-max], or the single value."""
    vals = [v for v in vals if v is not None]
    if not vals:
        return "-"
    m = fmt.format(statistics.median(vals))
    if len(vals) == 1:
        return m
    return f"{m} [{fmt.format(min(vals))}-{fmt.format(max(vals))}]"


def lat_of(r):
    """The latency a workload is judged by: transactions for rr (its connections open
    during the warmup), connects otherwise."""
    return r["latency_us"]["transaction" if r["workload"] == "rr" else "connect"]


def cpu(r, side, key):
    c = r.get("cpu")
    return None if not c else c[side].get(key)


def us_per(r):
    return cpu(r, "server", "us_per_txn" if r["workload"] == "rr" else "us_per_conn")


def bounds(runs):
    vs = [r.get("bound") or "-" for r in runs]
    if not vs:
        return "-"
    if len(set(vs)) == 1:
        return vs[0]
    return ",".join(f"{v}x{vs.count(v)}" for v in sorted(set(vs)))


def all_server_bound(runs):
    return bool(runs) and all(r.get("bound") == "server" for r in runs)


def napi_ticks(path):
    """CPU ticks the client-side and server-side NAPI kthreads used during the run, and the
    CPUs they were allowed on."""
    try:
        text = open(path).read()
    except OSError:
        return None
    before, after, part = {}, {}, None
    allowed = {"client": set(), "server": set()}
    for line in text.splitlines():
        if line.startswith("# before"):
            part = before
        elif line.startswith("# after"):
            part = after
        elif part is not None:
            m = re.match(r"(\w+) pid=(\d+) .*allowed=(\S+) last_cpu=(\d+) ticks=(\d+)", line)
            if m:
                side, pid, allow, _, ticks = m.groups()
                part[(side, pid)] = int(ticks)
                allowed[side].add(allow)
    used = {"client": 0, "server": 0}
    for k, v in after.items():
        used[k[0]] += v - before.get(k, v)
    return used, allowed


def main():
    out, elapsed = sys.argv[1], sys.argv[2]
    workloads = sys.argv[3].split(",")
    servers = sys.argv[4].split(",")
    header = ["workload", "server", "max rate /s", "failed", "offered /s", "p50 us",
              "p99 us", "server us/conn", "server busy", "server work", "client busy",
              "bound", "TW server max", "ceiling %", "vs Linux (max rate)"]
    rows, verdicts = [], []
    for wl in workloads:
        ceiling_runs = load_runs(out, wl, "ceiling", "max")
        ceiling = med([rate_of(r) for r in ceiling_runs])
        for s in servers:
            if s != "linux" and ceiling_runs:
                set_ceiling_pct(out, wl, s, ceiling)
        lmax = load_runs(out, wl, "linux", "max")
        llat = load_runs(out, wl, "linux", "lat")
        for s in servers + (["ceiling"] if ceiling_runs else []):
            mx, lt = load_runs(out, wl, s, "max"), load_runs(out, wl, s, "lat")
            if not mx and not lt:
                if s == "xtcp-sat":
                    continue  # measured in the stateless connect workload only
                rows.append([wl, s, "unavailable"] + [""] * (len(header) - 3))
                continue
            failed = sum(r["connections"]["failed"] for r in mx + lt)
            rate = med([rate_of(r) for r in mx])
            tws = [r["time_wait"]["server_max"] for r in mx + lt]
            ratio = ""
            if s not in ("linux", "ceiling") and lmax and mx:
                lr = med([rate_of(r) for r in lmax])
                if lr:
                    x = rate / lr
                    if all_server_bound(lmax) and all_server_bound(mx):
                        ratio = f"{x:.2f}x server vs server"
                    else:
                        ratio = f"{x:.2f}x rate ratio (bound: linux {bounds(lmax)}, {s} {bounds(mx)})"
            lu = med([us_per(r) for r in lmax])
            xu = med([us_per(r) for r in mx])
            if s not in ("linux", "ceiling") and lu and xu:
                verdicts.append(
                    f"{wl}: server CPU per {'transaction' if wl == 'rr' else 'connection'}: "
                    f"Linux {lu:.2f} us, {s} {xu:.2f} us = {xu / lu:.2f} of Linux "
                    f"(goal <= 1/3: {'met' if xu <= lu / 3 else 'not met'})")
            cp = med([r.get("ceiling_pct") for r in mx])
            if s not in ("linux", "ceiling"):
                if cp is not None:
                    verdicts.append(f"{wl}: {s} at {cp:.0f} % of the copy-mode I/O ceiling "
                                    f"(goal >= 85 %: {'met' if cp >= 85 else 'not met'})")
                if llat and lt:
                    lp = med([lat_of(r)["p99"] for r in llat])
                    xp = med([lat_of(r)["p99"] for r in lt])
                    if lp and xp:
                        what = "transaction" if wl == "rr" else "connect"
                        verdicts.append(
                            f"{wl}: p99 {what} at {lt[0]['load']['rate']:.0f}/s: Linux {lp:.0f} us, "
                            f"{s} {xp:.0f} us")
            rows.append([
                wl, s, spread([rate_of(r) for r in mx]), str(failed),
                spread([r["load"]["rate"] for r in lt]),
                spread([lat_of(r)["p50"] for r in lt], "{:.1f}"),
                spread([lat_of(r)["p99"] for r in lt], "{:.1f}"),
                spread([us_per(r) for r in mx], "{:.2f}"),
                spread([cpu(r, "server", "busy") for r in mx], "{:.2f}"),
                spread([cpu(r, "server", "work") for r in mx], "{:.2f}"),
                spread([cpu(r, "client", "busy") for r in mx], "{:.2f}"),
                bounds(mx),
                spread(tws),
                spread([r.get("ceiling_pct") for r in mx], "{:.0f}")
                if s not in ("linux", "ceiling") else "",
                ratio,
            ])

    # Which load generator ran each workload (bench.sh --client): the report's `backend`.
    clients = []
    for wl in workloads:
        kinds = sorted({r["backend"] for s in servers + ["ceiling"]
                        for ph in ("max", "lat") for r in load_runs(out, wl, s, ph)})
        if kinds:
            clients.append(f"{wl}: {', '.join(kinds)}")
    client_line = "Load generator per workload: " + "; ".join(clients) + "."
    if any("xdp-stateless" in c for c in clients):
        client_line += (" `xdp-stateless` is not a full TCP: SYNs from user space over AF_XDP, "
                        "the server's SYN-ACK and FIN answered by an XDP program with XDP_TX, "
                        "no retransmission, no client TIME-WAIT (docs/loadgen.md).")

    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]

    def line(r):
        return "  ".join(str(c).rjust(w) if 1 < i < len(r) - 1 else str(c).ljust(w)
                         for i, (c, w) in enumerate(zip(r, widths)))

    print()
    print("\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows]))
    print()
    for v in verdicts:
        print("  " + v)
    print("  " + client_line)
    print(f"\nmeasurement took {elapsed} s; results in {out}")

    # Fairness evidence: which side's NAPI kthreads did the receive work, and where.
    napi_lines = []
    for p in sorted(glob.glob(os.path.join(out, "*.napi.txt"))):
        got = napi_ticks(p)
        if got is None:
            continue
        used, allowed = got
        tag = os.path.basename(p)[: -len(".napi.txt")]
        napi_lines.append(
            f"| {tag} | {used['client']} | {','.join(sorted(allowed['client'])) or '-'} "
            f"| {used['server']} | {','.join(sorted(allowed['server'])) or '-'} |")

    model = ""
    try:
        model = [ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo")
                 if ln.startswith("model name")][0]
    except (OSError, IndexError):
        pass
    # Source addresses and target, from any run's report (the client of each workload is in
    # client_line).
    sources, target = 254, ""
    for p in sorted(glob.glob(os.path.join(out, "*-r*.json"))):
        if p.endswith(".server.json"):
            continue
        try:
            r = json.load(open(p))
        except (OSError, ValueError):
            continue
        sources, target = r["load"]["source_ips"], r["target"]
        break
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write("# xtcp benchmark: xtcp server vs Linux server\n\n")
        f.write(f"Command: `{os.environ.get('BENCH_CMD', './scripts/bench.sh')}`\n\n")
        f.write(f"Machine: {platform.node()}, kernel {platform.release()}, {os.cpu_count()} CPUs "
                f"({model}).\n")
        f.write("\n" + client_line + "\n\n")
        f.write("Load generator: core 0, namespace A, "
                f"{sources} source addresses, target {target}. Server: core 1, namespace B. "
                "`max`: closed loop; `lat`: open "
                "loop at the offered rate shown (half of Linux's median max), latency from the "
                "intended start; `p50/p99 us`: connect latency (rr: transaction latency) of the lat runs. "
                "Figures: median [min-max] over the repetitions. `server us/conn`: "
                "server-core time spent on work per completed connection (rr: per transaction); "
                "`server work`: the xtcp engine's own work fraction, /proc/stat busy for Linux; "
                "`bound`: which core was the limit (docs/benchmark.md). The last column says "
                "\"server vs server\" only where every max run of both servers was server-bound; "
                "otherwise it is a rate ratio and names the bounds. `ceiling`: the stateless reflector "
                "(`xtcp-loadgen reflector`, not a TCP server), the copy-mode AF_XDP I/O ceiling; "
                "`ceiling %` of an xtcp row is its max rate against the ceiling's median. "
                "`xtcp-sat` (connect, max runs only): the xtcp server in idle waiting with few "
                "spins and a larger window, the configuration that makes its core the limit "
                "(bench.sh --sat-spins, --sat-concurrency). Its window is one Linux cannot take "
                "(Linux stays at the default): where both rows were server-bound, its last "
                "column compares what each server's core sustains at its own limit.\n\n")
        f.write("| " + " | ".join(header) + " |\n|" + "---|" * len(header) + "\n")
        for r in rows:
            f.write("| " + " | ".join(str(c) for c in r) + " |\n")
        f.write("\n" + "\n".join("- " + v for v in verdicts) + "\n")
        f.write("\n## Plots\n\n")
        for wl in workloads:
            svg = f"{wl}-compare.svg"
            if not os.path.exists(os.path.join(out, svg)):
                continue
            png = f"{wl}-compare.png"
            f.write(f"### {wl}\n\n")
            if os.path.exists(os.path.join(out, png)):
                f.write(f"![{wl}]({png})\n\n[SVG]({svg})\n\n")
            else:
                f.write(f"![{wl}]({svg})\n\n(no PNG: install librsvg2-bin for rsvg-convert)\n\n")
        f.write("Per run: `<workload>-<server>-<max|lat>-r<N>.svg`.\n")
        f.write("\n## Who paid for receiving (NAPI kthreads, CPU ticks during the run)\n\n")
        if napi_lines:
            f.write("| run | client-side NAPI ticks | allowed CPUs | server-side NAPI ticks "
                    "| allowed CPUs |\n|---|---|---|---|---|\n")
            f.write("\n".join(napi_lines) + "\n")
        else:
            f.write("No NAPI kthreads recorded (--no-threaded-napi, or none found).\n")
        f.write("\nFiles: `<workload>-<server>-<max|lat>-r<N>.json` (load generator report, with "
                "`cpu` and `bound`), `.svg` (rate, TIME-WAIT, latency distribution), `.txt` "
                "(printed table), `.server.json` (server stats), `.server.log`, `.napi.txt` "
                "(NAPI kthreads before and after).\n")


if __name__ == "__main__":
    main()
