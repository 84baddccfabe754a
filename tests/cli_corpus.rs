//! Corpus runs of `w2vbert-infer` on the small checkpoint: directories mirrored under the output directory,
//! manifests, shards covering the inputs exactly once, resume after SIGKILL, bad files counted, the JSON summary,
//! dry runs, `inspect`, and packed encoder calls giving the same bytes as one file at a time.

mod common;

use common::corpus::*;
use common::*;
use std::process::Stdio;

#[test]
fn directory_outputs_mirror_the_tree() {
    let c = corpus();
    let out = tempfile::tempdir().unwrap();
    let o = infer(&[c.path().to_str().unwrap()], out.path());
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let j = json(&o);
    assert_eq!(j["files"], 5);
    assert_eq!(j["done"], 5);
    assert_eq!(j["skipped"], 0);
    assert_eq!(j["failed"].as_array().unwrap().len(), 0);
    assert!(j["audio_seconds"].as_f64().unwrap() > 4.0);
    assert!(j["frames"].as_u64().unwrap() > 200);
    for k in ["decode", "fbank", "encoder", "write"] {
        assert!(j["stages"][k].as_f64().unwrap() >= 0.0, "stage {k}");
    }
    assert!(j["real_time_factor"].as_f64().unwrap() > 0.0);
    assert!(j["peak_rss_bytes"].as_u64().unwrap() > 0);
    let got: Vec<String> = tree(out.path()).into_keys().collect();
    assert_eq!(got, CORPUS_OUTPUTS);
    for f in CORPUS_OUTPUTS {
        let (_, shape) = w2vbert::output::read_npy(&out.path().join(f)).unwrap();
        assert_eq!(shape[1], 64, "{f}");
    }
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("wrote 5 file(s)"), "{err}");
}

#[test]
fn shards_cover_the_tree_exactly_once_and_match_one_process() {
    let c = corpus();
    let whole = tempfile::tempdir().unwrap();
    assert!(infer(&[c.path().to_str().unwrap()], whole.path()).status.success());
    let want = tree(whole.path());
    for (n, mode) in [(3usize, "contiguous"), (2, "strided"), (7, "contiguous")] {
        let out = tempfile::tempdir().unwrap();
        let mut done = 0;
        for i in 0..n {
            let o = infer(
                &[
                    c.path().to_str().unwrap(),
                    "--num-shards",
                    &n.to_string(),
                    "--shard-index",
                    &i.to_string(),
                    "--shard-mode",
                    mode,
                ],
                out.path(),
            );
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            let j = json(&o);
            assert_eq!(j["skipped"], 0, "shard {i} of {n} {mode} rewrote another shard's file");
            done += j["done"].as_u64().unwrap();
        }
        assert_eq!(done, 5, "{n} {mode} shards");
        // Same files, same bytes as one process (packs differ between shards: packing does not change results).
        assert!(tree(out.path()) == want, "{n} {mode} shards differ from one process");
    }
    let o = infer(
        &[c.path().to_str().unwrap(), "--num-shards", "2", "--shard-index", "2"],
        whole.path(),
    );
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn packed_batches_write_the_same_bytes_as_one_at_a_time() {
    let c = corpus();
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // --batch-frames 1: every file alone; default: the whole corpus in one or two packs.
    assert!(infer(&[c.path().to_str().unwrap(), "--batch-frames", "1"], a.path())
        .status
        .success());
    assert!(infer(&[c.path().to_str().unwrap(), "--layers", "0,5,17"], b.path())
        .status
        .success());
    let alone = tempfile::tempdir().unwrap();
    assert!(infer(
        &[c.path().to_str().unwrap(), "--layers", "0,5,17", "--batch-frames", "1"],
        alone.path()
    )
    .status
    .success());
    let packed = tempfile::tempdir().unwrap();
    assert!(infer(&[c.path().to_str().unwrap()], packed.path()).status.success());
    assert!(tree(a.path()) == tree(packed.path()), "npy outputs differ");
    assert!(tree(b.path()) == tree(alone.path()), "safetensors outputs differ");
}

#[test]
fn manifests_plain_and_fairseq_tsv() {
    let c = corpus();
    let m = tempfile::tempdir().unwrap();
    // fairseq TSV: root, then relative paths with sample counts.
    let tsv = m.path().join("train.tsv");
    std::fs::write(
        &tsv,
        format!("{}\nspk2/utt.wav\t4800\nspk1/utt.wav\t64000\n", c.path().display()),
    )
    .unwrap();
    let out = tempfile::tempdir().unwrap();
    let o = infer(&["--manifest", tsv.to_str().unwrap()], out.path());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(json(&o)["done"], 2);
    assert_eq!(
        tree(out.path()).into_keys().collect::<Vec<_>>(),
        ["spk1/utt.npy", "spk2/utt.npy"]
    );
    // Plain list next to the corpus: relative to the manifest's folder; comments and blank lines skipped.
    let list = c.path().join("list.txt");
    std::fs::write(&list, "# a comment\nspk3/y.mp3\n\ntop.wav\n").unwrap();
    let out = tempfile::tempdir().unwrap();
    let o = infer(&["--manifest", list.to_str().unwrap()], out.path());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        tree(out.path()).into_keys().collect::<Vec<_>>(),
        ["spk3/y.npy", "top.npy"]
    );
}

#[test]
fn bad_files_are_counted_and_the_run_goes_on() {
    let c = corpus();
    std::fs::write(c.path().join("spk1/broken.wav"), b"RIFF\x10\x00\x00\x00WAVEjunkjunk").unwrap();
    let out = tempfile::tempdir().unwrap();
    let o = infer(&[c.path().to_str().unwrap()], out.path());
    assert_eq!(o.status.code(), Some(3), "{}", String::from_utf8_lossy(&o.stderr));
    let j = json(&o);
    assert_eq!(j["files"], 6);
    assert_eq!(j["done"], 5);
    let failed = j["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 1);
    assert!(failed[0]["path"].as_str().unwrap().ends_with("spk1/broken.wav"));
    assert!(!failed[0]["reason"].as_str().unwrap().is_empty());
    assert!(!out.path().join("spk1/broken.npy").exists());
    assert_eq!(tree(out.path()).len(), 5);
    // --fail-fast: stops at the bad file (spk1/broken.wav sorts before spk1/utt.wav), exit 1.
    let out = tempfile::tempdir().unwrap();
    let o = infer(&[c.path().to_str().unwrap(), "--fail-fast"], out.path());
    assert_eq!(o.status.code(), Some(1));
    let j = json(&o);
    assert_eq!(j["done"], 0);
    assert_eq!(j["not_run"], 5);
}

/// Symbolic links in a scanned tree: a dangling one named like audio is that input's failure (the run goes on) and
/// one pointing back to an ancestor directory adds nothing (its files are listed already); a dangling one of
/// another name may have been a directory, so it stops the run before anything is computed, naming it.
#[cfg(unix)]
#[test]
fn dangling_audio_and_looping_symlinks_do_not_stop_a_directory_run() {
    use std::os::unix::fs::symlink;
    let c = corpus();
    symlink("/nonexistent/gone.wav", c.path().join("spk3/gone.wav")).unwrap();
    symlink("..", c.path().join("spk2/up")).unwrap();
    let out = tempfile::tempdir().unwrap();
    let o = infer(&[c.path().to_str().unwrap()], out.path());
    assert_eq!(o.status.code(), Some(3), "{}", String::from_utf8_lossy(&o.stderr));
    let j = json(&o);
    assert_eq!((j["files"].as_u64(), j["done"].as_u64()), (Some(6), Some(5)), "{j}");
    let failed = j["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 1, "{j}");
    assert!(failed[0]["path"].as_str().unwrap().ends_with("spk3/gone.wav"), "{j}");
    assert!(failed[0]["reason"].as_str().unwrap().contains("No such file"), "{j}");
    assert_eq!(tree(out.path()).into_keys().collect::<Vec<_>>(), CORPUS_OUTPUTS);

    symlink("/nonexistent/mounted", c.path().join("spk3/more")).unwrap();
    let out = tempfile::tempdir().unwrap();
    let o = infer(&[c.path().to_str().unwrap()], out.path());
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("spk3/more: cannot scan"), "{err}");
    assert!(tree(out.path()).is_empty());
}

#[test]
fn rerun_skips_complete_outputs_and_redoes_incomplete_ones() {
    let c = corpus();
    let out = tempfile::tempdir().unwrap();
    assert!(infer(&[c.path().to_str().unwrap()], out.path()).status.success());
    let first = tree(out.path());
    // Truncate one output (exists but incomplete) and leave a temp file as a killed writer would.
    let victim = out.path().join("spk2/utt.npy");
    let bytes = std::fs::read(&victim).unwrap();
    std::fs::write(&victim, &bytes[..bytes.len() - 4]).unwrap();
    std::fs::write(out.path().join("spk1/.utt.npy.w2vbert-tmp.4242"), &bytes[..100]).unwrap();
    let o = infer(&[c.path().to_str().unwrap()], out.path());
    assert!(o.status.success());
    let j = json(&o);
    assert_eq!((j["done"].as_u64(), j["skipped"].as_u64()), (Some(1), Some(4)));
    assert!(tree(out.path()) == first, "temp not removed or output not restored");
    let o = infer(&[c.path().to_str().unwrap(), "--force"], out.path());
    assert_eq!(json(&o)["done"], 5);
    // Another format is another output: not skipped.
    let o = infer(&[c.path().to_str().unwrap(), "--format", "safetensors"], out.path());
    assert_eq!(json(&o)["done"], 5);
}

#[test]
fn sigkill_mid_run_then_rerun_completes_with_nothing_lost_or_duplicated() {
    // 100 files of 4 s: long enough that a kill lands mid-run.
    let c = tempfile::tempdir().unwrap();
    let n = 100;
    for i in 0..n {
        let to = c.path().join(format!("d{}/f{i:03}.wav", i % 7));
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(audio("arctic_a0007.wav"), &to).unwrap();
    }
    let out = tempfile::tempdir().unwrap();
    let mut child = bin()
        .args([
            "--checkpoint",
            tiny().to_str().unwrap(),
            "--threads",
            "1",
            "--quiet",
            "--batch-frames",
            "400",
        ])
        .arg("--output-dir")
        .arg(out.path())
        .arg(c.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait for some outputs, then SIGKILL.
    let start = std::time::Instant::now();
    loop {
        let written = tree(out.path()).keys().filter(|k| k.ends_with(".npy")).count();
        if written >= 5 {
            break;
        }
        assert!(start.elapsed().as_secs() < 120, "no progress");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    // The index after the kill: every complete line parses and names a complete output (a cut last line is
    // allowed and skipped).
    let index = out.path().join("w2vbert-index.shard-0-of-1.jsonl");
    let killed_index = w2vbert::corpus::index::read(&index).unwrap();
    for r in &killed_index {
        assert_eq!(r["status"], "done", "{r:?}");
        w2vbert::output::check_npy(&out.path().join(r["output"].as_str().unwrap())).unwrap();
    }
    let after_kill = tree(out.path());
    let complete = after_kill.keys().filter(|k| k.ends_with(".npy")).count();
    assert!(complete < n, "the run finished before the kill: make the corpus bigger");
    // Whatever is at an output path is complete; anything else is a temp file of ours.
    for k in after_kill.keys() {
        let p = out.path().join(k);
        if k.ends_with(".npy") {
            w2vbert::output::check_npy(&p).unwrap_or_else(|e| panic!("partial output after SIGKILL: {e}"));
        } else {
            let name = p.file_name().unwrap();
            assert!(w2vbert::output::temp_target(name).is_some(), "unexpected file {k}");
        }
    }
    let o = bin()
        .args(["--checkpoint", tiny().to_str().unwrap(), "--json", "--output-dir"])
        .arg(out.path())
        .arg(c.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let j = json(&o);
    assert_eq!(j["skipped"].as_u64().unwrap() as usize, complete);
    assert_eq!(j["done"].as_u64().unwrap() as usize, n - complete);
    // Exactly one complete output per input, no temp left, same bytes as an uninterrupted run.
    let reference = tempfile::tempdir().unwrap();
    assert!(infer(&[c.path().to_str().unwrap()], reference.path()).status.success());
    let (got, want) = (tree(out.path()), tree(reference.path()));
    assert_eq!(got.len(), n);
    assert!(got == want, "resumed outputs differ from an uninterrupted run");
    // The resumed shard index lists every output once (skipped, then done); merged, one line per output.
    let records = w2vbert::corpus::index::read(&index).unwrap();
    assert_eq!(records.len(), n);
    let skipped = records.iter().filter(|r| r["status"] == "skipped").count();
    assert_eq!(skipped, complete);
    let o = bin().arg("index").arg(out.path()).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let merged = w2vbert::corpus::index::read(&out.path().join("index.jsonl")).unwrap();
    let outs: Vec<&str> = merged.iter().map(|r| r["output"].as_str().unwrap()).collect();
    assert_eq!(outs, got.keys().map(String::as_str).collect::<Vec<_>>());
    for r in &merged {
        let shape = w2vbert::output::check_npy(&out.path().join(r["output"].as_str().unwrap())).unwrap();
        assert_eq!(r["frames"], shape[0], "{r:?}");
    }
}

#[test]
fn dry_run_lists_the_shard_and_writes_nothing() {
    let c = corpus();
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("not-yet");
    let o = bin()
        .args([
            "--checkpoint",
            tiny().to_str().unwrap(),
            "--dry-run",
            "--num-shards",
            "2",
            "--shard-index",
            "1",
        ])
        .arg("--output-dir")
        .arg(&dir)
        .arg(c.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    // 5 inputs, shard 1 of 2 (fairseq ranges 0..2, 2..5): the last three in sorted order.
    assert_eq!(lines.len(), 3, "{stdout}");
    assert!(
        lines[0].contains("spk2/utt.wav") && lines[0].ends_with("todo"),
        "{stdout}"
    );
    assert!(!dir.exists(), "dry run created the output directory");
    // A broken checkpoint is caught by the dry run.
    let o = bin()
        .args(["--checkpoint", "/nonexistent", "--dry-run", "--output-dir"])
        .arg(&dir)
        .arg(c.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn safetensors_format_and_max_seconds() {
    let out = tempfile::tempdir().unwrap();
    let o = infer(
        &[
            audio("arctic_a0007.wav").to_str().unwrap(),
            "--format",
            "safetensors",
            "--max-seconds",
            "1",
        ],
        out.path(),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let j = json(&o);
    assert!((j["audio_seconds"].as_f64().unwrap() - 1.0).abs() < 1e-9);
    let names = w2vbert::output::check_safetensors(&out.path().join("arctic_a0007.safetensors")).unwrap();
    // 16000 samples → 98 fbank frames → 49 rows.
    assert_eq!(
        names,
        vec![("mask".into(), vec![49]), ("semantic".into(), vec![49, 64])]
    );
}

/// `--threads` out of 1..=1024 is refused before anything runs (100 000 threads once used 24 min of CPU time on a
/// 4 s file without finishing).
#[test]
fn threads_out_of_range_are_refused() {
    for t in ["0", "1025", "100000"] {
        let out = tempfile::tempdir().unwrap();
        let o = bin()
            .args(["--checkpoint", tiny().to_str().unwrap(), "--threads", t, "--output-dir"])
            .arg(out.path())
            .arg(audio("arctic_a0007.wav"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{t}: {err}");
        assert!(
            err.contains("--threads must be 1 to 1024") && err.contains(&format!("got {t}")),
            "{err}"
        );
        assert!(tree(out.path()).is_empty(), "{t}");
    }
}

#[test]
fn inspect_reports_the_checkpoint_and_a_missing_tensor() {
    let o = bin().arg("inspect").arg(tiny()).output().unwrap();
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{s}");
    assert!(s.contains("0 missing, 0 wrong shape/dtype"), "{s}");
    assert!(s.contains("hidden_states 0..=24 available"), "{s}");
    assert!(s.contains("stats") && s.contains("dim 64"), "{s}");

    let ck = tempfile::tempdir().unwrap();
    std::fs::copy(tiny().join("config.json"), ck.path().join("config.json")).unwrap();
    let drop = "encoder.layers.3.conv_module.depthwise_conv.weight";
    let misshape = "encoder.layers.0.ffn1.output_dense.bias";
    rewrite_weights(
        &tiny().join("model.safetensors"),
        &ck.path().join("model.safetensors"),
        |n, s| match n {
            _ if n == drop => None,
            _ if n == misshape => Some(vec![1, s[0]]),
            _ => Some(s.to_vec()),
        },
    );
    let o = bin().arg("inspect").arg(ck.path()).output().unwrap();
    let s = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{s}");
    assert!(s.contains(&format!("missing  {drop}")), "{s}");
    assert!(
        s.contains("shape    encoder.layers.0.ffn1.output_dense.bias: [1, 64], expected [64]"),
        "{s}"
    );
    assert!(s.contains("1 missing, 1 wrong shape/dtype"), "{s}");
    assert!(s.contains("hidden_states 0..=0 available"), "{s}");
}

/// A file past the 600 s limit is refused (naming the file and the limit), but `--max-seconds` below the limit
/// decodes it up to the limit and keeps the prefix, as IndexTTS2 cuts its prompts.
#[test]
fn max_seconds_cuts_a_file_longer_than_the_limit_instead_of_refusing_it() {
    let d = tempfile::tempdir().unwrap();
    let (rate, secs) = (8000u32, w2vbert::audio::MAX_AUDIO_SECONDS + 1);
    let n = (rate * secs) as usize;
    let mut data = Vec::with_capacity(n * 2);
    for i in 0..n {
        // A chirp-like pattern with a noise floor: not a pure tone.
        let v = ((i * 7919 + i * i / 13) % 4001) as i32 - 2000;
        data.extend_from_slice(&(v as i16).to_le_bytes());
    }
    let mut wav = Vec::new();
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes());
    wav.extend_from_slice(&rate.to_le_bytes());
    wav.extend_from_slice(&(rate * 2).to_le_bytes());
    wav.extend_from_slice(&2u16.to_le_bytes());
    wav.extend_from_slice(&16u16.to_le_bytes());
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&(data.len() as u32).to_le_bytes());
    wav.extend_from_slice(&data);
    let long = d.path().join("long.wav");
    std::fs::write(&long, &wav).unwrap();
    let out = d.path().join("out");
    let run = |extra: &[&str]| {
        bin()
            .args([
                "--checkpoint",
                tiny().to_str().unwrap(),
                "--threads",
                "1",
                "--quiet",
                "--features-only",
            ])
            .args(extra)
            .arg("--output-dir")
            .arg(&out)
            .arg(&long)
            .output()
            .unwrap()
    };
    let refused = run(&[]);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("long.wav") && err.contains("600 s limit"), "{err}");
    let cut = run(&["--max-seconds", "2"]);
    assert!(cut.status.success(), "{}", String::from_utf8_lossy(&cut.stderr));
    let npy = std::fs::read(out.join("long.npy")).unwrap();
    // 2 s at 16 kHz: 198 fbank frames -> 99 rows of 160 f32 after the header.
    let header = npy.len() - 99 * 160 * 4;
    assert!(
        String::from_utf8_lossy(&npy[..header]).contains("(99, 160)"),
        "{:?}",
        &npy[..header.min(128)]
    );
}

/// Every pinned hostile audio input (`fuzz/regressions/audio/`, a selector byte then the file; the selector's
/// low bits pick the extension as in `fuzz/entry.rs`) beside good files in one directory: every good output is
/// written and complete, every hostile file is reported by name, nothing else is written, exit 3. A decoder
/// panic on one file (a WAV declaring 0 Hz once killed the whole run) must cost that file only.
#[test]
fn hostile_audio_files_fail_alone_and_the_good_ones_are_written() {
    let c = corpus();
    let hostile_dir = repo().join("fuzz/regressions/audio");
    let mut hostile = Vec::new();
    for e in std::fs::read_dir(&hostile_dir).unwrap() {
        let p = e.unwrap().path();
        let b = std::fs::read(&p).unwrap();
        let ext = ["wav", "flac", "mp3", "ogg"][(b[0] & 3) as usize];
        let name = format!("hostile/{}.{ext}", p.file_name().unwrap().to_string_lossy());
        std::fs::create_dir_all(c.path().join("hostile")).unwrap();
        std::fs::write(c.path().join(&name), &b[1..]).unwrap();
        hostile.push(name);
    }
    assert!(hostile.len() >= 3, "{hostile:?}");
    let out = tempfile::tempdir().unwrap();
    let o = infer(&[c.path().to_str().unwrap()], out.path());
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let j = json(&o);
    assert_eq!(j["done"], CORPUS_OUTPUTS.len());
    let failed: Vec<&str> = j["failed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(failed.len(), hostile.len(), "{failed:?}");
    for h in &hostile {
        assert!(
            failed.iter().any(|f| f.ends_with(h.as_str())),
            "{h} not reported: {failed:?}"
        );
    }
    let zero_hz = j["failed"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"].as_str().unwrap().contains("sample_rate_0hz"));
    assert!(
        zero_hz.unwrap()["reason"]
            .as_str()
            .unwrap()
            .contains("sample rate is 0 Hz"),
        "{j}"
    );
    let got: Vec<String> = tree(out.path()).into_keys().collect();
    assert_eq!(got, CORPUS_OUTPUTS);
    for f in CORPUS_OUTPUTS {
        w2vbert::output::check_npy(&out.path().join(f)).unwrap();
    }
}
