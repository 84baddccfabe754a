"""Side-by-side benchmark (issue 8, item 1): `w2vbert-infer` against HF transformers (fp32 24 and 17 layers, bf16
autocast 17), ONNX Runtime (fp32, 17-layer export) and OpenVINO (f32 and bf16, 17 layers), in one run, on the same
seeded checkpoint and the same speech, with the same thread count everywhere.

    cargo build --release
    python scripts/bench_vs_hf.py --seconds 10,51 [--runs 5] [--engines cli,hf17,...] [--out FILE]
    python scripts/bench_vs_hf.py --small --seconds 3,5      # 256-wide 24-layer checkpoint: checks the script

Every engine runs in its own child process (the CLI itself, or `bench_peers.py KIND SPEC` for the peers), so its
peak RSS (ru_maxrss of the child, from wait4) is its own; this orchestrator imports no torch and stays small (its
own peak is printed: a child's figure is the max of the two).
Per engine and length: a warm-up call (its time and the load/compile time are reported apart), then the median of
the remaining runs. The CLI is timed as a whole process (load + decode + fbank + 17 layers + write), `--runs`
times after one warm-up; each peer is timed on the encoder alone with its model loaded, on the features of HF's
SeamlessM4T extractor (timed apart, in its own row), `--peer-runs` times, fewer when `--peer-budget` seconds would
be exceeded (the runs column says so). Parity is against HF fp32 cut to 17 layers, hidden_states[17]: the peers on
the same HF features, the CLI end to end from the wav (its own fbank).

Checkpoint: fullsize_parity.py's seeded full-size one (checkpoints/w2v-bert-2.0-random, made when missing), or
`--small`'s, or any `--checkpoint DIR` (config.json, model.safetensors, wav2vec2bert_stats.safetensors). Its
model.safetensors (and the bf16 conversion's) is dropped from the page cache and read back once before any run,
so the CLI maps it in 2 MiB pages as it would a file read from disk (`--keep-page-cache` to skip; docs/loading.md).
The ONNX export and the OpenVINO IR are made in their own child processes and cached under the work directory.
"""
import argparse
import datetime
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import pathlib
import platform
import re
import resource
import statistics
import subprocess
import sys
import time

import numpy as np

from parity_stats import stats

from bench_peers import LAYER, PAIR_TOKEN

ROOT = pathlib.Path(__file__).resolve().parent.parent
PEERS = pathlib.Path(__file__).resolve().parent / "bench_peers.py"
# name: (row label, what is timed)
ENGINES = {
    "cli": ("`w2vbert-infer` fp32", "whole process"),
    "cli-bf16": ("`w2vbert-infer --precision bf16`", "whole process"),
    "cli-bf16ck": ("`w2vbert-infer --precision bf16`, `convert --dtype bf16` checkpoint", "whole process"),
    "hf24": ("HF fp32, 24 layers, hidden_states[17] (as IndexTTS2)", "encoder, loaded"),
    "hf17": ("HF fp32 cut to 17 layers", "encoder, loaded"),
    "hf17-bf16": ("HF bf16 autocast, cut to 17", "encoder, loaded"),
    "ort": ("ONNX Runtime fp32, 17-layer export", "encoder, loaded"),
    "ov-f32": ("OpenVINO f32, 17 layers", "encoder, compiled"),
    "ov-bf16": ("OpenVINO bf16 hint, 17 layers", "encoder, compiled"),
}
SMALL = dict(hidden_size=256, num_attention_heads=4, intermediate_size=1024, num_hidden_layers=24)
# `--pair-with`: the CLI run a peer's timed runs alternate with, as the table's paired column names it.
PAIR_LABEL = {"fp32": "fp32", "bf16ck": "bf16 (checkpoint)"}


def child_env(threads, extra=None):
    env = dict(os.environ)
    for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[k] = str(threads)
    env.update(extra or {})
    return env


def spawn(cmd, env, capture=None, between=None):
    """Run `cmd`, return (exit code, wall seconds, peak RSS GB of that child from wait4). With `capture` (a path
    prefix), stdout/stderr go to files instead of the terminal. With `between` (a worker in paired mode, see
    bench_peers.timed_runs): each time the child prints PAIR_TOKEN, `between()` runs while the child waits, idle, then the
    child is let go; its other stdout lines are passed through."""
    out = err = None
    if capture:
        out, err = open(f"{capture}.stdout", "w"), open(f"{capture}.stderr", "w")
    t = time.perf_counter()
    if between is None:
        p = subprocess.Popen(cmd, env=env, stdout=out, stderr=err)
    else:
        p = subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True)
        for line in p.stdout:
            if line.strip() == PAIR_TOKEN:
                between()
                p.stdin.write("go\n")
                p.stdin.flush()
            else:
                sys.stdout.write(line)
        p.stdin.close()
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t
    p.returncode = os.waitstatus_to_exitcode(status)
    for fh in (out, err):
        if fh:
            fh.close()
    return p.returncode, wall, ru.ru_maxrss * 1024 / 1e9


def exit_reason(code):
    if code < 0:
        return f"killed by signal {-code}" + (" (out of memory?)" if code == -9 else "")
    return f"exit code {code}"


def run_worker(kind, spec, work, threads, env_extra=None, between=None):
    """Returns (result dict or None, peak RSS GB, failure reason or None). With `between`, the worker runs paired:
    `between()` after each of its timed runs (see bench_peers.timed_runs)."""
    spec_path = work / f"spec_{kind}_{spec.get('tag', '')}.json"
    spec["result"] = str(spec_path.with_suffix(".result.json"))
    spec["paired"] = between is not None
    pathlib.Path(spec["result"]).unlink(missing_ok=True)
    spec_path.write_text(json.dumps(spec, indent=1))
    code, _, peak = spawn([sys.executable, str(PEERS), kind, str(spec_path)],
                          child_env(threads, env_extra), between=between)
    res = json.loads(pathlib.Path(spec["result"]).read_text()) if pathlib.Path(spec["result"]).exists() else {}
    if code != 0 or "error" in res or not res:
        why = f": {res['error']}" if "error" in res else ""
        return None, peak, f"{kind} child failed ({exit_reason(code)}){why}"
    return res, peak, None


def cli_has_bf16(binary):
    h = subprocess.run([str(binary), "--help"], capture_output=True, text=True).stdout
    return "--precision" in h and "bf16" in h


def cli_cmd(binary, ck, wav, out_dir, threads, extra):
    return [str(binary), "--checkpoint", str(ck), "--layers", str(LAYER), "--threads", str(threads),
            "--output-dir", str(out_dir), str(wav), "--verbose", *extra]


def cli_once(binary, ck, wav, out_dir, threads, extra):
    """One whole-process CLI run between two runs of a peer (paired mode); its wall time, or None if it
    failed. A short pause first, in case a paused peer's worker threads spin before they sleep (measured on the
    no-AMX Xeon: HF, ONNX Runtime and OpenVINO used ≤ 3 ms of CPU during a CLI run after this pause)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / (pathlib.Path(wav).stem + ".safetensors")).unlink(missing_ok=True)
    time.sleep(0.3)
    code, wall, _ = spawn(cli_cmd(binary, ck, wav, out_dir, threads, extra), child_env(threads),
                          capture=out_dir / "cli")
    return wall if code == 0 else None


def run_cli(binary, ck, wav, out_dir, threads, runs, extra):
    """Warm-up + `runs` whole-process runs; hidden_states[17] from the last one."""
    from safetensors.numpy import load_file

    out_dir.mkdir(parents=True, exist_ok=True)
    cmd = cli_cmd(binary, ck, wav, out_dir, threads, extra)
    walls, peaks = [], []
    out_file = out_dir / (pathlib.Path(wav).stem + ".safetensors")
    for i in range(runs + 1):
        # The CLI skips an input whose complete output exists (resumable corpus runs): every timed run must
        # compute, so the previous run's output goes first.
        out_file.unlink(missing_ok=True)
        code, wall, peak = spawn(cmd, child_env(threads), capture=out_dir / "cli")
        if code != 0:
            msg = (out_dir / "cli.stderr").read_text().strip().splitlines()[-1:] or [""]
            return None, f"CLI failed ({exit_reason(code)}): {msg[0]}"
        walls.append(wall)
        peaks.append(peak)
    stderr = (out_dir / "cli.stderr").read_text()
    m = re.search(r"peak RSS ([0-9.]+)", stderr)
    kernel = re.search(r"bf16 matmul: (.*)", stderr) if "bf16" in extra else None
    pages = re.search(r"file pages mapped [0-9.]+ GB, ([0-9]+) % as 2 MiB pages", stderr)
    h17 = load_file(str(out_file))[f"hidden_states.{LAYER}"]
    return {"load_s": None, "first_s": walls[0], "times": walls[1:], "peak_gb": max(peaks),
            "self_reported_peak_gb": float(m.group(1)) if m else None, "cmd": " ".join(cmd), "h17": h17,
            "bf16_kernel": kernel.group(1).strip() if kernel else None,
            "huge_page_pct": int(pages.group(1)) if pages else None}, None


def convert_bf16_once(binary, ck, path, notes):
    """`w2vbert-infer convert --dtype bf16` of the checkpoint (17 layers), once per checkpoint version."""
    if (path / "model.safetensors").exists():
        return None
    t0 = time.perf_counter()
    cmd = [str(binary), "convert", "--checkpoint", str(ck), "--dtype", "bf16", "--layers", str(LAYER),
           "--output-dir", str(path), "--force"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        return f"convert failed: {(r.stderr.strip().splitlines() or [''])[-1]}"
    notes.append(f"convert --dtype bf16: {path.name} made in {time.perf_counter() - t0:.1f} s this run; not in "
                 f"any row's time")
    return None


def cache_from_disk(ck, done, notes, keep):
    """Drop the checkpoint's model.safetensors from the page cache and read it back, once per bench run (Linux):
    pages a process wrote (a download, a copy, the script that made the random checkpoint) stay cached in small
    pages, which costs every CLI run 20-100 ms of mapping (docs/loading.md, "Page size"); read from disk, the file
    is cached in 2 MiB folios, as a checkpoint read cold is (and as `convert` leaves its output). `keep`
    (--keep-page-cache) leaves the cache as found; the CLI rows' notes say what the runs mapped either way."""
    path = pathlib.Path(ck) / "model.safetensors"
    if keep or path in done or not hasattr(os, "posix_fadvise") or not path.exists():
        return
    done.add(path)
    t0 = time.perf_counter()
    with open(path, "rb") as f:
        os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
        while f.read(16 << 20):
            pass
    notes.append(f"page cache: {path.parent.name}/model.safetensors dropped and read back from disk "
                 f"({time.perf_counter() - t0:.1f} s, before any timed run; --keep-page-cache to skip)")


def cache_key(ck):
    st = (pathlib.Path(ck) / "model.safetensors").stat()
    return hashlib.sha1(f"{pathlib.Path(ck).resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:10]


def export_once(kind, path, spec, work, threads, notes, env_extra=None):
    """Make the ONNX / OpenVINO file when not cached; returns a failure reason or None."""
    meta = path.with_name(path.name + ".meta.json")
    if path.exists() and meta.exists():
        m = json.loads(meta.read_text())
        notes.append(f"{kind}: reused {path.name} (made in {m['export_s']:.1f} s, peak RSS {m['peak_gb']:.2f} GB)")
        return None
    print(f"== {kind} -> {path}", flush=True)
    res, peak, err = run_worker(kind, dict(spec, path=str(path)), work, threads, env_extra)
    if err:
        return err
    meta.write_text(json.dumps({"export_s": res["export_s"], "peak_gb": peak}))
    notes.append(f"{kind}: {path.name} made in {res['export_s']:.1f} s this run (own process, peak RSS {peak:.2f} "
                 f"GB); not in any row's time")
    return None


def machine():
    model = next((ln.split(":", 1)[1].strip() for ln in subprocess.run(["lscpu"], capture_output=True,
                  text=True).stdout.splitlines() if ln.startswith("Model name")), "?")
    flags = set()
    for ln in open("/proc/cpuinfo"):
        if ln.startswith("flags"):
            flags = set(ln.split(":", 1)[1].split())
            break
    mem = next((int(ln.split()[1]) / 1e6 for ln in open("/proc/meminfo") if ln.startswith("MemTotal")), 0)

    def ver(p):
        try:
            return importlib.metadata.version(p)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    git = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True,
                         text=True).stdout.strip()
    return {
        "cpu": model, "cores": os.cpu_count(), "mem_gb": round(mem, 1), "kernel": platform.release(),
        "avx512f": "avx512f" in flags, "avx512_bf16": "avx512_bf16" in flags,
        "amx": sorted(f for f in flags if f.startswith("amx")),
        "versions": {p: ver(p) for p in ("torch", "transformers", "onnxruntime", "onnx", "openvino", "numpy")},
        "python": platform.python_version(), "git": git, "load_avg_1min": os.getloadavg()[0],
    }


def fmt(x, spec=".2f", none="—"):
    return none if x is None else format(x, spec)


def paired(r):
    """`1.07× (5; CLI 1.80 s)`: the median over pairs of (peer run / the CLI run right after it)."""
    if "pair_ratio" not in r:
        return ""
    return (f"{r['pair_ratio']:.2f}× ({len(r['paired_cli_times'])}; CLI "
            f"{statistics.median(r['paired_cli_times']):.2f} s)")


def table(rows, length, mach, threads, cli_fp32, cli_bf16, pair_with):
    out = [f"### {length['audio_s']:.1f} s of speech, T = {length['frames']} frames, {threads} threads",
           "",
           "| engine | timed | runs | median s | load/compile s | warm-up s | ours fp32 is | ours "
           f"{PAIR_LABEL[pair_with]} is, paired runs | ours bf16 is | peak RSS GB | rel L2 | max-abs | cosine | "
           "worst frame cos |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r.get("skipped"):
            out.append(f"| {r['label']} | skipped: {r['skipped'].replace('|', '/')} |" + " |" * 12)
            continue
        med = r["median"]
        p = r.get("parity") or {}

        def ratio(ours):
            return "—" if (r["name"].startswith("cli") or ours is None or med is None) else f"{med / ours:.2f}×"

        runs = f"{len(r['times'])}" + (f" (budget; asked {r['asked']})" if len(r["times"]) < r["asked"] else "")
        out.append(
            f"| {r['label']} | {r['timed']} | {runs} | {fmt(med, '.3f')} | {fmt(r.get('load_s'))} | "
            f"{fmt(r.get('first_s'), '.3f')} | {ratio(cli_fp32)} | {paired(r)} | {ratio(cli_bf16)} | "
            f"{fmt(r.get('peak_gb'))} | "
            f"{fmt(p.get('rel_l2'), '.2e', 'ref')} | {fmt(p.get('max_abs'), '.2e', 'ref')} | "
            f"{fmt(p.get('cosine'), '.7f', 'ref')} | {fmt(p.get('worst_frame_cosine'), '.6f', 'ref')} |")
    ext = length["extractor_times"]
    out.append(f"| HF SeamlessM4T extractor (not in the peers' times) | features from the wav in memory | {len(ext)} "
               f"| {statistics.median(ext):.3f} | | {length['extractor_first_s']:.3f} | | | | | | | | |")
    return out


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", default="10,51", help="speech lengths, comma-separated (default 10,51)")
    ap.add_argument("--runs", type=int, default=5, help="timed CLI runs after a warm-up (default 5)")
    ap.add_argument("--peer-runs", type=int, default=5, help="timed runs per peer after a warm-up (default 5)")
    ap.add_argument("--peer-budget", type=float, default=150,
                    help="seconds of timed runs per peer and length: fewer runs (at least 1) past it (default 150)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--keep-page-cache", action="store_true",
                    help="do not drop the checkpoints' file pages and read them back from disk before the runs "
                         "(by default done once, so they are cached in 2 MiB pages as a file read cold is)")
    ap.add_argument("--no-pair", action="store_true",
                    help="do not run the CLI once between each two timed runs of every peer")
    ap.add_argument("--pair-with", choices=sorted(PAIR_LABEL), default="fp32",
                    help="the CLI run between two timed runs of a peer: fp32 (needs engine cli) or --precision bf16 "
                         "on the convert --dtype bf16 checkpoint (needs engine cli-bf16ck); default fp32")
    ap.add_argument("--engines", default=",".join(ENGINES), help=f"subset of {','.join(ENGINES)}")
    ap.add_argument("--bin", type=pathlib.Path, default=ROOT / "target" / "release" / "w2vbert-infer")
    ap.add_argument("--checkpoint", type=pathlib.Path, help="an existing checkpoint dir instead of a seeded one")
    ap.add_argument("--small", action="store_true",
                    help=f"a seeded small checkpoint ({SMALL}) in checkpoints/bench-small-random, to check the script")
    ap.add_argument("--work", type=pathlib.Path, help="work dir (default out/bench_vs_hf[_small])")
    ap.add_argument("--out", type=pathlib.Path, help="markdown table file (default <work>/table.md); JSON beside it")
    args = ap.parse_args()
    args.engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    bad = [e for e in args.engines if e not in ENGINES]
    if bad:
        ap.error(f"unknown engine(s) {bad}; choose from {','.join(ENGINES)}")
    args.seconds = [float(s) for s in args.seconds.split(",")]
    if args.small and args.checkpoint:
        ap.error("--small and --checkpoint exclude each other")
    return args


def checkpoint_choice(args):
    """(checkpoint dir or None for fullsize_parity.py's seeded one, whether prep makes it, its config or None)."""
    if args.checkpoint:
        for f in ("config.json", "model.safetensors", "wav2vec2bert_stats.safetensors"):
            if not (args.checkpoint / f).exists():
                sys.exit(f"{args.checkpoint / f}: missing (the CLI and the peers need config.json, "
                         f"model.safetensors and wav2vec2bert_stats.safetensors)")
        return args.checkpoint, False, None
    if args.small:
        return ROOT / "checkpoints" / "bench-small-random", True, SMALL
    return None, True, None


def engine_skips(engines, binary):
    """Which engines cannot run at all, with the reason (a row says it; never a crash)."""
    skip = {}
    if any(e.startswith("cli") for e in engines) and not binary.exists():
        for e in engines:
            if e.startswith("cli"):
                skip[e] = f"{binary} not found (cargo build --release, or --bin PATH)"
    for e in ("cli-bf16", "cli-bf16ck"):
        if e in engines and e not in skip and not cli_has_bf16(binary):
            skip[e] = f"`{binary.name} --help` lists no `--precision bf16`"
    for e, mod in (("ort", "onnxruntime"), ("ov-f32", "openvino"), ("ov-bf16", "openvino")):
        if e in engines and importlib.util.find_spec(mod) is None:
            skip[e] = f"python package {mod} not installed (pip install -r scripts/requirements-bench.txt)"
    for e, why in skip.items():
        print(f"skip {e}: {why}", flush=True)
    return skip


class Bench:
    """What every length shares: the arguments, the checkpoint, the exports made once (their failures too), the
    page-cache reloads done and the notes for the table."""

    def __init__(self, args, ck, work, skip):
        self.args, self.ck, self.work, self.skip = args, ck, work, skip
        self.threads = args.threads
        self.key = cache_key(ck)
        self.notes, self.export_err, self.from_disk = [], {}, set()
        cache_from_disk(ck, self.from_disk, self.notes, args.keep_page_cache)

    def bf16_checkpoint(self):
        """`convert --dtype bf16` of the checkpoint, made once and read back from disk once: (path, failure)."""
        path = self.work / f"bf16_{LAYER}_{self.key}"
        if "bf16ck" not in self.export_err:
            self.export_err["bf16ck"] = convert_bf16_once(self.args.bin, self.ck, path, self.notes)
            if not self.export_err["bf16ck"]:
                cache_from_disk(path, self.from_disk, self.notes, self.args.keep_page_cache)
        return path, self.export_err["bf16ck"]

    def export(self, kind, path, common, env_extra=None):
        if kind not in self.export_err:
            self.export_err[kind] = export_once(kind, path, common, self.work, self.threads, self.notes, env_extra)
        return self.export_err[kind]

    def length(self, sec, length):
        """Every engine's row at one length (HF fp32 17 layers, the parity reference, runs even when not listed)."""
        args = self.args
        common = {"checkpoint": str(self.ck), "features": length["features"], "threads": self.threads,
                  "runs": args.peer_runs, "budget": args.peer_budget, "tag": f"{sec:g}s"}
        pair_engine = "cli" if args.pair_with == "fp32" else "cli-bf16ck"
        pair = not args.no_pair and pair_engine in args.engines and pair_engine not in self.skip
        pair_ck, pair_extra = self.ck, []
        if pair and args.pair_with == "bf16ck":
            pair_ck, err = self.bf16_checkpoint()
            pair_extra, pair = ["--precision", "bf16"], not err
        outs = {}

        def peer(name, kind, extra, env_extra=None):
            print(f"== {name} @ {sec:g} s" + (f" (paired with CLI {PAIR_LABEL[args.pair_with]} runs)" if pair
                                              else ""), flush=True)
            spec = dict(common, **extra, output=str(self.work / f"h17_{name}_{sec:g}s.npy"), tag=f"{name}_{sec:g}s")
            paired = []
            between = (lambda: paired.append(cli_once(args.bin, pair_ck, length["wav"],
                                                      self.work / f"cli-paired_{sec:g}s", self.threads, pair_extra))
                       ) if pair else None
            res, peak, err = run_worker(kind, spec, self.work, self.threads, env_extra, between)
            if err:
                return {"name": name, "skipped": err}
            outs[name] = np.load(spec["output"])
            row = dict(res, name=name, peak_gb=peak, asked=args.peer_runs)
            pairs = [(t, c) for t, c in zip(res["times"], paired) if c]
            if pairs:
                row["paired_cli_times"] = [c for _, c in pairs]
                row["pair_ratio"] = statistics.median(t / c for t, c in pairs)
            return row

        ref_row = peer("hf17", "hf", {"layers": LAYER, **({} if "hf17" in args.engines else {"runs": 0})})
        if ref_row.get("skipped"):
            sys.exit(f"reference failed: {ref_row['skipped']}")
        rows = []
        for name in args.engines:
            if name in self.skip:
                row = {"name": name, "skipped": self.skip[name]}
            elif name == "hf17":
                row = ref_row
            elif name.startswith("cli"):
                row = self.cli_row(name, sec, length, outs)
            elif name == "hf24":
                row = peer(name, "hf", {"layers": None})
            elif name == "hf17-bf16":
                row = peer(name, "hf", {"layers": LAYER, "bf16": True})
            elif name == "ort":
                path = self.work / f"cut{LAYER}_{self.key}.onnx"
                err = self.export("export_onnx", path, common)
                row = {"name": name, "skipped": err} if err else peer(name, "ort", {"path": str(path)})
            else:  # ov-f32, ov-bf16
                path = self.work / f"cut{LAYER}_{self.key}.xml"
                # CI=true makes openvino's convert_model send no telemetry (openvino_telemetry's CI check).
                err = self.export("convert_ov", path, common, {"CI": "true"})
                row = ({"name": name, "skipped": err} if err
                       else peer(name, "ov", {"path": str(path), "precision": name.split("-")[1]}))
                if row.get("precision_compiled") and row["precision_compiled"] != row["precision_requested"]:
                    self.notes.append(f"{name} @ {sec:g} s: asked {row['precision_requested']}, OpenVINO compiled "
                                      f"{row['precision_compiled']}")
            if row.get("skipped"):
                print(f"skip {name} @ {sec:g} s: {row['skipped']}", flush=True)
            else:
                row["median"] = statistics.median(row["times"]) if row["times"] else None
                row["parity"] = None if name == "hf17" else stats(outs[name], outs["hf17"])
            row["label"], row["timed"] = ENGINES[name]
            rows.append(row)
        return rows

    def cli_row(self, name, sec, length, outs):
        print(f"== {name} @ {sec:g} s", flush=True)
        cli_ck, err = self.ck, None
        if name == "cli-bf16ck":
            cli_ck, err = self.bf16_checkpoint()
        if not err:
            r, err = run_cli(self.args.bin, cli_ck, length["wav"], self.work / f"{name}_{sec:g}s", self.threads,
                             self.args.runs, ["--precision", "bf16"] if name != "cli" else [])
        if err:
            return {"name": name, "skipped": err}
        outs[name] = r.pop("h17")
        if r["bf16_kernel"] and f"bf16 matmul: {r['bf16_kernel']}" not in self.notes:
            self.notes.append(f"bf16 matmul: {r['bf16_kernel']}")
        if r["huge_page_pct"] is not None:
            self.notes.append(f"{name} @ {sec:g} s: the checkpoint's mapped file pages were {r['huge_page_pct']} % "
                              f"2 MiB pages (docs/loading.md: a full-size checkpoint cached in small pages costs "
                              f"20–100 ms more per run)")
        return dict(r, name=name, asked=self.args.runs)


def header_md(mach, threads, ck):
    return ["## bench_vs_hf", "",
            f"Machine: {mach['cpu']}, {mach['cores']} cores, {mach['mem_gb']} GB; avx512f "
            f"{'yes' if mach['avx512f'] else 'no'}, avx512_bf16 {'yes' if mach['avx512_bf16'] else 'no'}, AMX "
            f"{', '.join(mach['amx']) if mach['amx'] else 'no'}; {threads} threads everywhere. "
            + ", ".join(f"{k} {v}" for k, v in mach["versions"].items())
            + f", python {mach['python']}; repo {mach['git']}; checkpoint {ck.name}; "
            f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC.", ""]


def notes_md(args, mach, notes):
    own_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9
    pl = PAIR_LABEL[args.pair_with]
    return [
        "Notes:",
        f"- Times are medians of the timed runs after one warm-up (its time: warm-up column); `ours fp32 is` = "
        f"peer median / CLI fp32 median (> 1: ours is faster), likewise for bf16 (the faster of the two bf16 CLI "
        f"rows; the converted checkpoint's is bf16 on disk: nothing to round at load). The CLI is the whole process "
        f"(load + decode + fbank + {LAYER} layers + write of `--layers {LAYER}`), from the wav; the peers are the "
        f"encoder alone, model loaded, on HF's extractor output (extractor timed in its own row, not in their "
        f"times), so the ratios understate ours.",
        f"- `ours {pl} is, paired runs`: the host drifts between one engine's block of runs and the next, so each "
        f"peer's timed runs alternate with whole-process CLI runs ({pl}, `--pair-with`; the peer's process waits, "
        "idle, while the CLI runs once after each of its runs; `--no-pair` turns this off). The column is the median "
        "over those pairs of peer time / CLI time, with the number of pairs and the median of those CLI runs.",
        "- load/compile: HF from_pretrained (+ cut); ORT session creation; OpenVINO read + static reshape + "
        "compile. The ONNX export and OpenVINO conversion ran in their own processes (below).",
        f"- Load average (1 min) at the start {mach['load_avg_1min']:.2f}, at the end {os.getloadavg()[0]:.2f}: "
        f"other work on the machine skews every time above (not the parity).",
        f"- Peak RSS: ru_maxrss of each engine's own child process (wait4; this orchestrator's own peak, "
        f"{own_peak:.2f} GB, is a floor under every figure).",
        f"- Parity: hidden_states[{LAYER}] against HF fp32 cut to {LAYER} layers on the same features; the peers "
        f"on HF's extractor output, the CLI end to end from the wav with its own fbank (so its figure includes the "
        f"front end's ~1e-6 difference). Worst frame cos = the lowest per-frame cosine.",
        *[f"- {n}" for n in notes],
    ]


def main():
    args = parse_args()
    ck, make_ck, cfg = checkpoint_choice(args)
    work = (args.work or ROOT / "out" / ("bench_vs_hf_small" if args.small else "bench_vs_hf")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    out_md = args.out or work / "table.md"
    mach = machine()
    print(json.dumps(mach), flush=True)
    skip = engine_skips(args.engines, args.bin)

    print(f"== prep: checkpoint {ck or 'fullsize_parity.CK'}, speech {args.seconds} s", flush=True)
    prep, _, err = run_worker("prep", {"checkpoint": ck and str(ck), "make_checkpoint": make_ck, "config": cfg,
                                       "seconds": args.seconds, "work": str(work), "threads": args.threads},
                              work, args.threads)
    if err:
        sys.exit(err)
    bench = Bench(args, pathlib.Path(prep.pop("checkpoint")), work, skip)
    report = {"machine": mach, "checkpoint": str(bench.ck), "threads": args.threads, "lengths": {}}
    md = header_md(mach, args.threads, bench.ck)
    for sec in args.seconds:
        length = prep[f"{sec:g}"]
        rows = bench.length(sec, length)
        med = {r["name"]: r.get("median") for r in rows}
        bf16_best = min((m for m in (med.get("cli-bf16"), med.get("cli-bf16ck")) if m), default=None)
        md += table(rows, length, mach, args.threads, med.get("cli"), bf16_best, args.pair_with) + [""]
        report["lengths"][f"{sec:g}"] = {"prep": length, "rows": rows}

    text = "\n".join(md + notes_md(args, mach, bench.notes)) + "\n"
    print(text)
    out_md.parent.mkdir(parents=True, exist_ok=True)
    out_md.write_text(text)
    out_md.with_suffix(".json").write_text(json.dumps(report, indent=1, default=str))
    print(f"wrote {out_md} and {out_md.with_suffix('.json')}")


if __name__ == "__main__":
    main()
