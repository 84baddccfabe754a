//! Corpus conventions of `w2vbert-infer`: JSONL manifests, inputs that expand to nothing, a fully resumed run
//! that loads no model, the shard index and its merge, and a worker thread that dies (fault injected with
//! `W2VBERT_FAILPOINT`), and a full disk (the same, `enospc:`).

mod common;

use common::corpus::*;
use serde_json::Value;
use std::path::Path;

fn index_of(out: &Path) -> Vec<serde_json::Map<String, Value>> {
    w2vbert::corpus::index::read(&out.join("w2vbert-index.shard-0-of-1.jsonl")).unwrap()
}

#[test]
fn jsonl_manifest_ids_keys_and_the_index_carry_the_lines() {
    let c = corpus();
    let m = c.path().join("train.jsonl");
    std::fs::write(
        &m,
        concat!(
            "{\"wav\": \"spk1/utt.wav\", \"id\": \"s1/u1\", \"text\": \"hello\", \"speaker\": \"s1\"}\n",
            "\n",
            "{\"wav\": \"spk2/deeper/x.flac\", \"text\": \"no id: mirrored\"}\n",
            "{\"wav\": \"top.wav\", \"id\": 7}\n",
        ),
    )
    .unwrap();
    let out = tempfile::tempdir().unwrap();
    let o = infer(
        &["--manifest", m.to_str().unwrap(), "--manifest-key", "wav"],
        out.path(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let got: Vec<String> = tree(out.path()).into_keys().collect();
    assert_eq!(got, ["7.npy", "s1/u1.npy", "spk2/deeper/x.npy"]);
    let index = index_of(out.path());
    assert_eq!(index.len(), 3);
    let first = index.iter().find(|r| r["output"] == "s1/u1.npy").unwrap();
    assert_eq!(
        (&first["text"], &first["speaker"], &first["id"]),
        (&"hello".into(), &"s1".into(), &"s1/u1".into())
    );
    assert_eq!(first["status"], "done");
    assert!(first["input"].as_str().unwrap().ends_with("spk1/utt.wav"));
    assert!(first["seconds"].as_f64().unwrap() > 3.0);
    // The same outputs as a plain run of those files.
    let plain = tempfile::tempdir().unwrap();
    assert!(infer(&[c.path().join("spk1/utt.wav").to_str().unwrap()], plain.path())
        .status
        .success());
    assert_eq!(tree(plain.path())["utt.npy"], tree(out.path())["s1/u1.npy"]);
    // The default key is `audio`; bad lines name the manifest, the line and the key.
    for (line, want) in [
        ("{\"wav\": \"top.wav\"}", "line 1: no `audio` key"),
        ("{\"audio\": \"top.wav\", \"id\": \"../x\"}", "line 1: `id` \"../x\""),
        ("{\"audio\": 5}", "line 1: `audio` must be a non-empty path string"),
        ("{\"audio\": \"top.wav\"", "line 1: not a JSON object"),
    ] {
        std::fs::write(&m, format!("{line}\n")).unwrap();
        let o = infer(&["--manifest", m.to_str().unwrap()], out.path());
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(err.contains("train.jsonl") && err.contains(want), "{want}: {err}");
    }
}

#[test]
fn inputs_that_expand_to_nothing_exit_4_naming_them() {
    let d = tempfile::tempdir().unwrap();
    let empty = d.path().join("empty");
    let named_like_audio = d.path().join("x.wav");
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::create_dir_all(named_like_audio.join("sub")).unwrap();
    std::fs::write(empty.join("notes.txt"), "not audio").unwrap();
    let manifest = d.path().join("m.txt");
    std::fs::write(&manifest, "# nothing listed\n\n").unwrap();
    let out = d.path().join("out");
    let o = infer(
        &[
            empty.to_str().unwrap(),
            named_like_audio.to_str().unwrap(),
            "--manifest",
            manifest.to_str().unwrap(),
        ],
        &out,
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(4), "{err}");
    for name in ["empty", "x.wav", "m.txt"] {
        assert!(err.contains(name), "{name} not named: {err}");
    }
    assert!(!out.exists(), "nothing may be written");
}

#[test]
fn a_fully_resumed_run_loads_no_model() {
    let c = corpus();
    let ck = tempfile::tempdir().unwrap();
    for f in ["config.json", "model.safetensors", "wav2vec2bert_stats.safetensors"] {
        std::fs::copy(tiny().join(f), ck.path().join(f)).unwrap();
    }
    let out = tempfile::tempdir().unwrap();
    let run = || {
        bin()
            .args(["--json", "--checkpoint", ck.path().to_str().unwrap(), "--output-dir"])
            .arg(out.path())
            .arg(c.path())
            .output()
            .unwrap()
    };
    let first = json(&run());
    assert_eq!(
        (first["done"].as_u64(), first["model_loaded"].as_bool()),
        (Some(5), Some(true))
    );
    // Weights that no longer load: a resumed run must not touch them.
    std::fs::write(ck.path().join("model.safetensors"), b"not a safetensors file").unwrap();
    let o = run();
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let j = json(&o);
    assert_eq!((j["skipped"].as_u64(), j["done"].as_u64()), (Some(5), Some(0)));
    assert_eq!(
        (j["model_loaded"].as_bool(), j["stages"]["load"].as_f64()),
        (Some(false), Some(0.0))
    );
    let index = index_of(out.path());
    assert_eq!(index.len(), 5);
    assert!(
        index
            .iter()
            .all(|r| r["status"] == "skipped" && r["seconds"].as_f64().unwrap() > 0.0),
        "{index:?}"
    );
    // With one output missing, the same checkpoint is loaded and refused, naming the weights file.
    std::fs::remove_file(out.path().join("top.npy")).unwrap();
    let o = run();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("model.safetensors"));
}

#[test]
fn failed_inputs_are_indexed_and_the_merge_reports_them() {
    let c = corpus();
    std::fs::write(c.path().join("spk1/broken.wav"), b"RIFF\x10\x00\x00\x00WAVEjunkjunk").unwrap();
    let out = tempfile::tempdir().unwrap();
    for i in 0..2 {
        let o = infer(
            &[
                c.path().to_str().unwrap(),
                "--num-shards",
                "3",
                "--shard-index",
                &i.to_string(),
            ],
            out.path(),
        );
        assert!(o.status.code() == Some(0) || o.status.code() == Some(3));
    }
    let o = bin().arg("index").arg(out.path()).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.contains("broken.wav") && err.contains("shard(s) 2-of-3"), "{err}");
    let merged = w2vbert::corpus::index::read(&out.path().join("index.jsonl")).unwrap();
    let outs: Vec<&str> = merged.iter().map(|r| r["output"].as_str().unwrap()).collect();
    assert_eq!(outs, tree(out.path()).keys().map(String::as_str).collect::<Vec<_>>());
    // An output directory without a run is told so.
    let o = bin().arg("index").arg(c.path()).output().unwrap();
    assert_eq!(o.status.code(), Some(4));
}

/// A `--json` run on one thread of the tiny checkpoint, with `W2VBERT_FAILPOINT` set when given.
fn run_json(failpoint: Option<&str>, out: &Path, inputs: &[&Path]) -> std::process::Output {
    let mut cmd = bin();
    if let Some(f) = failpoint {
        cmd.env("W2VBERT_FAILPOINT", f);
    }
    cmd.args([
        "--json",
        "--threads",
        "1",
        "--checkpoint",
        tiny().to_str().unwrap(),
        "--output-dir",
    ])
    .arg(out)
    .args(inputs)
    .output()
    .unwrap()
}

#[test]
fn a_worker_that_dies_stops_the_run_cleanly_with_exit_5() {
    for stage in ["reader", "encoder", "writer"] {
        let c = corpus();
        let out = tempfile::tempdir().unwrap();
        // spk2/utt.wav is the third input in path order.
        let fp = format!("{stage}:utt.wav");
        let o = run_json(
            Some(&fp),
            out.path(),
            &[&c.path().join("spk2"), &c.path().join("top.wav")],
        );
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(5), "{stage}: {err}");
        let j = json(&o);
        let internal = j["internal_error"].as_str().unwrap();
        assert!(
            internal.contains(stage) && internal.contains("spk2/utt.wav"),
            "{internal}"
        );
        assert!(err.contains("internal error") && err.contains("spk2/utt.wav"), "{err}");
        // Whatever was written is complete, nothing else is there (no temporary file), and the index agrees.
        let written = tree(out.path());
        assert!(!written.contains_key("utt.npy"), "{stage}: {written:?}");
        for k in written.keys() {
            assert!(k.ends_with(".npy"), "{stage}: left {k}");
            w2vbert::output::check_npy(&out.path().join(k)).unwrap();
        }
        let done: Vec<String> = index_of(out.path())
            .iter()
            .map(|r| r["output"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(done, written.keys().cloned().collect::<Vec<_>>(), "{stage}");
    }
}

#[test]
fn a_full_disk_stops_the_run_with_exit_1_and_a_rerun_resumes() {
    let c = corpus();
    let out = tempfile::tempdir().unwrap();
    let run = |failpoint: Option<&str>| run_json(failpoint, out.path(), &[c.path()]);
    // spk2/deeper/x.flac is the second input in path order; its write fails with ENOSPC.
    let o = run(Some("enospc:x.flac"));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    let j = json(&o);
    let stopped = j["stopped"].as_str().unwrap();
    assert!(
        stopped.contains("spk2/deeper/x.npy") && stopped.contains("No space left"),
        "{stopped}"
    );
    assert!(
        err.contains("the run stopped") && err.contains("No space left"),
        "{err}"
    );
    assert_eq!((j["done"].as_u64(), j["not_run"].as_u64()), (Some(1), Some(3)), "{j}");
    let failed = j["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 1, "{j}");
    assert!(failed[0]["path"].as_str().unwrap().ends_with("spk2/deeper/x.flac"));
    assert!(j["internal_error"].is_null(), "{j}");
    // What was written is complete and listed; nothing else is there.
    let written: Vec<String> = tree(out.path()).into_keys().collect();
    assert_eq!(written, ["spk1/utt.npy"]);
    w2vbert::output::check_npy(&out.path().join("spk1/utt.npy")).unwrap();
    let index: Vec<(String, String)> = index_of(out.path())
        .iter()
        .map(|r| {
            (
                r["output"].as_str().unwrap().into(),
                r["status"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        index,
        [
            ("spk1/utt.npy".into(), "done".into()),
            ("spk2/deeper/x.npy".into(), "failed".into())
        ]
    );
    // Space freed: the re-run skips the written output and does the rest.
    let o = run(None);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let j = json(&o);
    assert_eq!((j["skipped"].as_u64(), j["done"].as_u64()), (Some(1), Some(4)), "{j}");
    assert!(j["stopped"].is_null(), "{j}");
    assert_eq!(tree(out.path()).into_keys().collect::<Vec<_>>(), CORPUS_OUTPUTS);
}
