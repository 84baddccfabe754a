"""The peers' side of `bench_vs_hf.py`: each engine runs in its own child process,
`python scripts/bench_peers.py KIND SPEC.json`, which reads its spec, runs, and writes its result (or
{"error": ...}) to spec["result"]. Kinds: prep (checkpoint, speech, HF extractor features), hf (fp32 or bf16
autocast, any number of layers), export_onnx, ort, convert_ov, ov. Each imports torch / onnxruntime / openvino
itself, so the orchestrator stays small (its own peak RSS is a floor under every child's).
"""
import json
import pathlib
import sys
import time

import numpy as np

LAYER = 17


def vm_hwm_gb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024 / 1e9
    return None


PAIR_TOKEN = "@@bench_vs_hf:paired-cli-run@@"


def timed_runs(call, runs, budget, paired=False):
    """Warm-up call, then min(runs, budget / warm-up time) timed calls (at least 1). Returns the warm-up time, the
    timed runs and the last output. `paired`: after each timed call, hand the machine to the orchestrator (a token
    line on stdout, then wait for a line on stdin) so that it runs the CLI once between this engine's runs."""
    t = time.perf_counter()
    out = call()
    first = time.perf_counter() - t
    n = max(1, min(runs, int(budget // max(first, 1e-9)))) if runs > 0 else 0
    times = []
    for _ in range(n):
        t = time.perf_counter()
        out = call()
        times.append(time.perf_counter() - t)
        if paired:
            print(PAIR_TOKEN, flush=True)
            sys.stdin.readline()
    return first, times, out


def load_hf(ck, layers=None):
    import torch  # noqa: F401
    from transformers import Wav2Vec2BertModel

    model = Wav2Vec2BertModel.from_pretrained(ck).eval()
    if layers is not None:
        if len(model.encoder.layers) < layers:
            raise SystemExit(f"{ck}: the model has {len(model.encoder.layers)} layers, fewer than {layers}")
        model.encoder.layers = model.encoder.layers[:layers]
    return model


def cut_module(ck):
    """The HF model cut to 17 layers, returning last_hidden_state (= hidden_states[17]: this encoder has no final
    norm, and the default config has no adapter), for the ONNX and OpenVINO exports."""
    import torch

    model = load_hf(ck, LAYER)
    if model.config.add_adapter or model.config.use_intermediate_ffn_before_adapter:
        raise SystemExit(f"{ck}: an adapter / intermediate ffn follows the encoder; last_hidden_state is not "
                         f"hidden_states[{LAYER}]")

    class Cut(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_features, attention_mask):
            return self.m(input_features=input_features, attention_mask=attention_mask).last_hidden_state

    return Cut(model).eval()


def worker_prep(spec):
    """Checkpoint (made when missing), speech of each length, HF extractor features (timed)."""
    import torch
    from transformers import Wav2Vec2BertConfig

    import fullsize_parity as fp
    import hf_reference as ref

    torch.set_num_threads(spec["threads"])
    ck = pathlib.Path(spec["checkpoint"]) if spec["checkpoint"] else fp.CK
    if spec["make_checkpoint"]:
        fp.make_checkpoint(ck, Wav2Vec2BertConfig(**spec["config"]) if spec["config"] else None)
    fe = ref.extractor()
    res = {"checkpoint": str(ck)}
    for sec in spec["seconds"]:
        wav_path, wav = fp.make_audio(sec, pathlib.Path(spec["work"]))
        first, times, f = timed_runs(lambda: fe(wav, sampling_rate=16000, return_tensors="np"), 5, 1e9)
        feats = pathlib.Path(spec["work"]) / f"features_{sec:g}s.npz"
        np.savez(feats, input_features=f["input_features"], attention_mask=f["attention_mask"])
        res[f"{sec:g}"] = {"wav": str(wav_path), "features": str(feats), "audio_s": len(wav) / 16000,
                           "frames": int(f["input_features"].shape[1]), "extractor_first_s": first,
                           "extractor_times": times, "masked_frames": int((f["attention_mask"] == 0).sum())}
    return res


def worker_hf(spec):
    import torch

    import hf_reference as ref

    torch.set_num_threads(spec["threads"])
    torch.set_num_interop_threads(1)
    t = time.perf_counter()
    model = load_hf(spec["checkpoint"], spec["layers"])
    load = time.perf_counter() - t
    f = np.load(spec["features"])
    dtype = torch.bfloat16 if spec.get("bf16") else None
    first, times, hs = timed_runs(lambda: ref.hidden_states(model, f["input_features"], f["attention_mask"], dtype),
                                  spec["runs"], spec["budget"], spec.get("paired", False))
    np.save(spec["output"], hs[LAYER][0].astype(np.float32))
    return {"load_s": load, "first_s": first, "times": times, "vm_hwm_gb": vm_hwm_gb()}


def worker_export_onnx(spec):
    import torch

    torch.set_num_threads(spec["threads"])
    f = np.load(spec["features"])
    t = time.perf_counter()
    model = cut_module(spec["checkpoint"])
    path = pathlib.Path(spec["path"])
    tmp = path.with_name(path.stem + ".tmp.onnx")
    with torch.inference_mode():
        torch.onnx.export(
            model, (torch.from_numpy(f["input_features"]), torch.from_numpy(f["attention_mask"])), str(tmp),
            input_names=["input_features", "attention_mask"], output_names=["hidden_state_17"],
            dynamic_axes={"input_features": {1: "T"}, "attention_mask": {1: "T"}, "hidden_state_17": {1: "T"}},
            opset_version=17, dynamo=False,
        )
    tmp.rename(path)
    return {"export_s": time.perf_counter() - t}


def worker_ort(spec):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = spec["threads"]
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    t = time.perf_counter()
    sess = ort.InferenceSession(spec["path"], so, providers=["CPUExecutionProvider"])
    load = time.perf_counter() - t
    f = np.load(spec["features"])
    feed = {"input_features": f["input_features"], "attention_mask": f["attention_mask"]}
    first, times, out = timed_runs(lambda: sess.run(None, feed)[0], spec["runs"], spec["budget"],
                                   spec.get("paired", False))
    np.save(spec["output"], out[0].astype(np.float32))
    return {"load_s": load, "first_s": first, "times": times, "vm_hwm_gb": vm_hwm_gb(),
            "providers": sess.get_providers()}


def worker_convert_ov(spec):
    import openvino as ov
    import torch

    torch.set_num_threads(spec["threads"])
    f = np.load(spec["features"])
    t = time.perf_counter()
    model = cut_module(spec["checkpoint"])
    with torch.inference_mode():
        m = ov.convert_model(model, example_input=(torch.from_numpy(f["input_features"]),
                                                   torch.from_numpy(f["attention_mask"])))
    path = pathlib.Path(spec["path"])
    tmp = path.with_name(path.stem + ".tmp.xml")
    ov.save_model(m, str(tmp), compress_to_fp16=False)  # keep f32 weights (save_model's default is f16)
    tmp.with_suffix(".bin").rename(path.with_suffix(".bin"))
    tmp.rename(path)
    return {"export_s": time.perf_counter() - t}


def worker_ov(spec):
    import openvino as ov
    import openvino.properties as props
    import openvino.properties.hint as hints

    f = np.load(spec["features"])
    core = ov.Core()
    t = time.perf_counter()
    m = core.read_model(spec["path"])
    # Static shapes for this length: OpenVINO's best case (the compile is in load_s).
    m.reshape({m.inputs[0]: ov.PartialShape(list(f["input_features"].shape)),
               m.inputs[1]: ov.PartialShape(list(f["attention_mask"].shape))})
    want = ov.Type.bf16 if spec["precision"] == "bf16" else ov.Type.f32
    cm = core.compile_model(m, "CPU", {
        props.inference_num_threads(): spec["threads"],
        hints.inference_precision(): want,
        hints.performance_mode(): hints.PerformanceMode.LATENCY,
        props.num_streams(): 1,
    })
    load = time.perf_counter() - t
    got = str(cm.get_property(hints.inference_precision()))
    req = cm.create_infer_request()
    feed = {0: f["input_features"], 1: f["attention_mask"]}
    first, times, out = timed_runs(lambda: req.infer(feed)[cm.output(0)].copy(), spec["runs"], spec["budget"],
                                   spec.get("paired", False))
    np.save(spec["output"], out[0].astype(np.float32))
    return {"load_s": load, "first_s": first, "times": times, "vm_hwm_gb": vm_hwm_gb(),
            "precision_requested": str(want), "precision_compiled": got,
            "threads_compiled": int(cm.get_property(props.inference_num_threads()))}


WORKERS = {"prep": worker_prep, "hf": worker_hf, "export_onnx": worker_export_onnx, "ort": worker_ort,
           "convert_ov": worker_convert_ov, "ov": worker_ov}


def main():
    kind, spec_path = sys.argv[1], sys.argv[2]
    spec = json.loads(pathlib.Path(spec_path).read_text())
    try:
        res = WORKERS[kind](spec)
    except BaseException as e:  # the reason goes into the table row; the traceback to stderr
        pathlib.Path(spec["result"]).write_text(json.dumps({"error": f"{type(e).__name__}: {e}"[:300]}))
        raise
    pathlib.Path(spec["result"]).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
