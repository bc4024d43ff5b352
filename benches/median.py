#!/usr/bin/env python3
"""The median of several benches/load.sh runs, as one table.

usage: benches/median.py RUN1.txt RUN2.txt RUN3.txt ...   (each: load.sh's standard output)

Per scenario: the median req/s, p50, p99 and CPU µs/req over the runs; the ratios are those of
the medians (CPU and p99 against the cheaper plain TLS proxy's medians, CPU against
HAProxy-as-gateway's median with the same algorithm, as load.sh computes them per run).
"""
import statistics
import sys


def micros(text):
    for suffix, factor in (("us", 1), ("ms", 1e3), ("s", 1e6)):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * factor
    return float(text)


def rows(path):
    out = {}
    with open(path) as f:
        lines = f.read().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("scenario"))
    for line in lines[start + 3 :]:
        fields = line.split()
        if len(fields) < 9 or fields[0].startswith("proxy"):
            break
        out[fields[0]] = (float(fields[1]), micros(fields[2]), micros(fields[3]), float(fields[4]), int(fields[8]))
    return out


def main():
    runs = [rows(p) for p in sys.argv[1:]]
    names = [n for n in runs[0] if all(n in r for r in runs)]
    med = {n: [statistics.median(r[n][k] for r in runs) for k in range(4)] + [max(r[n][4] for r in runs)] for n in names}
    proxies = [p for p in ("nginx-tls", "haproxy-tls") if p in med]
    proxy = min(proxies, key=lambda p: med[p][3]) if proxies else None

    def peer(name):
        if name.startswith("haproxy"):
            return None
        if "es256" in name or name == "gw-mask":
            return "haproxy-jwt-es256"
        if "rs256" in name or name.startswith(("gw-apikey", "gw-redis")):
            return "haproxy-jwt-rs256"
        return None

    print(f"median of {len(runs)} runs")
    print(f"{'scenario':<21} {'req/s':>8} {'p50 us':>9} {'p99 us':>9} {'CPU':>7} {'CPU vs':>7} {'p99 vs':>7} {'CPU vs':>8} {'non-2xx':>8}")
    print(f"{'':<21} {'':>8} {'':>9} {'':>9} {'us/req':>7} {'proxy':>7} {'proxy':>7} {'haproxy':>8} {'(max)':>8}")
    for n in names:
        rps, p50, p99, cpu, non2xx = med[n]
        vp = f"{cpu / med[proxy][3]:.2f}x" if proxy and n != "direct" else "-"
        vl = f"{p99 / med[proxy][2]:.2f}x" if proxy and n != "direct" else "-"
        g = peer(n)
        vg = f"{cpu / med[g][3]:.2f}x" if g in med else "-"
        print(f"{n:<21} {rps:>8.0f} {p50:>9.0f} {p99:>9.0f} {cpu:>7.1f} {vp:>7} {vl:>7} {vg:>8} {non2xx:>8}")
    if proxy:
        print(f"proxy = {proxy}, the cheaper plain TLS proxy by median CPU")


if __name__ == "__main__":
    main()
