//! Archive-scale `detect`: units under --out, shards, resume after a kill or SIGTERM, tar units. Exit codes and
//! scheduler variables: tests/jobs.rs.

mod archive_support;
mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use archive_support::{fixture, run, sshface};
use serde_json::Value;

/// Every record of the unit files under `dir` (jsonl), and the names of all entries (to spot leftovers).
fn records(dir: &Path) -> (Vec<Value>, Vec<String>) {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut recs = Vec::new();
    for n in names.iter().filter(|n| n.ends_with(".jsonl")) {
        let text = std::fs::read_to_string(dir.join(n)).unwrap();
        for line in text.lines() {
            recs.push(
                serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("{n}: bad line {line:?}: {e}")),
            );
        }
    }
    (recs, names)
}

fn by_image(recs: &[Value]) -> BTreeMap<String, Value> {
    let mut m = BTreeMap::new();
    for r in recs {
        let k = r["image"].as_str().unwrap().to_string();
        assert!(
            m.insert(k.clone(), r.clone()).is_none(),
            "duplicate record for {k}"
        );
    }
    m
}

/// Same images, same errors, same faces (boxes within 1e-3 px).
fn assert_same(got: &BTreeMap<String, Value>, want: &BTreeMap<String, Value>) {
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    for (k, w) in want {
        let g = &got[k];
        assert_eq!(
            g["error"].is_string(),
            w["error"].is_string(),
            "{k}: {g} vs {w}"
        );
        let (gf, wf) = (g["faces"].as_array(), w["faces"].as_array());
        assert_eq!(gf.map(Vec::len), wf.map(Vec::len), "{k}: {g} vs {w}");
        for (a, b) in gf.into_iter().flatten().zip(wf.into_iter().flatten()) {
            for j in 0..4 {
                let d = (a["box"][j].as_f64().unwrap() - b["box"][j].as_f64().unwrap()).abs();
                assert!(d < 1e-3, "{k}: box {} vs {}", a["box"], b["box"]);
            }
        }
    }
}

/// Waits until `n` unit files exist under `dir` while `child` runs.
fn wait_for_units(dir: &Path, n: usize, child: &mut std::process::Child) {
    let start = Instant::now();
    loop {
        let done = std::fs::read_dir(dir)
            .map(|d| {
                d.flatten()
                    .filter(|e| e.file_name().to_string_lossy().ends_with(".jsonl"))
                    .count()
            })
            .unwrap_or(0);
        if done >= n {
            return;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "worker ended before writing {n} units"
        );
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "{n} units not written within 300 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Replaces `img` by a named pipe, so a worker that reaches it blocks there: a deterministic "midway" whatever the
/// GPU's speed. Returns where the image was put aside.
fn block_at(img: &Path) -> PathBuf {
    let aside = img.with_extension("aside");
    std::fs::rename(img, &aside).unwrap();
    assert!(Command::new("mkfifo").arg(img).status().unwrap().success());
    aside
}

fn unblock(img: &Path, aside: &Path) {
    std::fs::remove_file(img).unwrap();
    std::fs::rename(aside, img).unwrap();
}

/// Three shard workers, one killed (SIGKILL) midway and rerun: the union equals one single-process run, with no
/// duplicates and no partial file left under any name.
#[test]
fn killed_shard_rerun_equals_single_run() {
    if common::gpu().is_none() {
        return;
    }
    let dir = common::scratch("archive-shards");
    let imgs = fixture(&dir.join("in"), 12, &[4, 9]);
    let args = |out: &Path| {
        let mut c = sshface();
        c.args(["detect", "--bucket", "--unit-size", "1", "--out"])
            .arg(out)
            .arg(dir.join("in"));
        c
    };
    let (single, sharded) = (dir.join("single"), dir.join("sharded"));
    let (code, err, _) = run(&mut args(&single));
    assert_eq!(code, 1, "corrupt images give exit 1: {err}");
    assert!(
        err.contains("12 images") && err.contains("2 failed"),
        "summary line: {err}"
    );

    // Shard 1/3 holds units 1, 4, 7, 10: killed while unit 7 is in progress.
    let aside = block_at(&imgs[7]);
    let mut victim = args(&sharded)
        .args(["--shard", "1/3"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_units(&sharded, 2, &mut victim);
    std::thread::sleep(Duration::from_millis(200));
    victim.kill().unwrap();
    victim.wait().unwrap();
    unblock(&imgs[7], &aside);
    let (partial, names) = records(&sharded);
    assert_eq!(partial.len(), 2, "{names:?}");
    assert!(
        names
            .iter()
            .any(|n| n.starts_with(".unit-000007.jsonl.partial-")),
        "{names:?}"
    );
    for k in ["0/3", "1/3", "2/3"] {
        let (code, err, _) = run(args(&sharded).args(["--shard", k]));
        assert!(code == 0 || code == 1, "shard {k}: {err}");
        if k == "1/3" {
            assert!(err.contains("2 already complete"), "{err}");
        }
    }
    let (want, _) = records(&single);
    let (got, names) = records(&sharded);
    assert_eq!(got.len(), 12);
    assert_same(&by_image(&got), &by_image(&want));
    assert!(
        names
            .iter()
            .all(|n| n.ends_with(".jsonl") && !n.starts_with('.')),
        "{names:?}"
    );
    // A finished run skips everything; --overwrite redoes its units.
    let (code, err, _) = run(args(&sharded).args(["--shard", "2/3"]));
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("0 images") && err.contains("4 already complete"),
        "{err}"
    );
    let (_, err, _) = run(args(&sharded).args(["--shard", "2/3", "--overwrite"]));
    assert!(
        err.contains("4 images") && err.contains("4 written"),
        "{err}"
    );
}

/// SIGTERM: the batch in flight finishes, the unit in progress is dropped, exit 4, and a rerun completes.
#[test]
fn sigterm_exits_4_without_partial_files() {
    if common::gpu().is_none() {
        return;
    }
    let dir = common::scratch("archive-sigterm");
    let imgs = fixture(&dir.join("in"), 6, &[]);
    let out = dir.join("out");
    let cmd = || {
        let mut c = sshface();
        c.args(["detect", "--no-bucket", "--unit-size", "2", "--out"])
            .arg(&out)
            .arg(dir.join("in"));
        c
    };
    let aside = block_at(&imgs[3]);
    let mut child = cmd().stderr(Stdio::piped()).spawn().unwrap();
    wait_for_units(&out, 1, &mut child);
    let pid = child.id();
    // bash's builtin: procps' kill is not in every root the tests run in.
    let term = format!("kill -TERM {pid}");
    assert!(Command::new("bash")
        .args(["-c", &term])
        .status()
        .unwrap()
        .success());
    std::thread::sleep(Duration::from_millis(200));
    // Let the blocked reader go on: it sees the signal at its next image.
    drop(
        std::fs::OpenOptions::new()
            .write(true)
            .open(&imgs[3])
            .unwrap(),
    );
    let o = child.wait_with_output().unwrap();
    unblock(&imgs[3], &aside);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(4), "{err}");
    assert!(err.contains("interrupted"), "{err}");
    let (recs, names) = records(&out);
    assert_eq!(names, ["unit-000000.jsonl"], "no partial file");
    assert_eq!(recs.len(), 2);
    let (code, err, _) = run(&mut cmd());
    assert_eq!(code, 0, "{err}");
    assert_eq!(by_image(&records(&out).0).len(), 6);
}

/// A .tar is one unit read as a stream; its images give the same results as the same files on disk.
#[test]
fn tar_unit_equals_files() {
    if common::gpu().is_none() {
        return;
    }
    let dir = common::scratch("archive-tar");
    let files = fixture(&dir.join("in"), 4, &[2]);
    let tar_path = dir.join("shard-000007.tar");
    let mut b = tar::Builder::new(std::fs::File::create(&tar_path).unwrap());
    b.append_path_with_name(dir.join("in/000.png"), "000.png")
        .unwrap();
    let meta = b"{\"caption\": \"not an image\"}";
    let mut h = tar::Header::new_gnu();
    h.set_size(meta.len() as u64);
    h.set_cksum();
    b.append_data(&mut h, "000.json", &meta[..]).unwrap();
    for f in &files[1..] {
        b.append_path_with_name(f, f.file_name().unwrap()).unwrap();
    }
    b.finish().unwrap();
    drop(b);
    let (t_out, f_out) = (dir.join("t"), dir.join("f"));
    let (code, err, _) = run(sshface()
        .args(["detect", "--bucket", "--out"])
        .arg(&t_out)
        .arg(&tar_path));
    assert_eq!(code, 1, "{err}");
    assert!(
        t_out.join("shard-000007.jsonl").exists(),
        "the unit is named after the tar"
    );
    let (code, err, _) = run(sshface()
        .args(["detect", "--bucket", "--out"])
        .arg(&f_out)
        .arg(dir.join("in")));
    assert_eq!(code, 1, "{err}");
    let rename = |recs: Vec<Value>| -> BTreeMap<String, Value> {
        by_image(&recs)
            .into_iter()
            .map(|(k, v)| {
                (
                    Path::new(&k)
                        .file_name()
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                    v,
                )
            })
            .collect()
    };
    let (t, f) = (rename(records(&t_out).0), rename(records(&f_out).0));
    assert_eq!(t.len(), 4, "the .json entry is skipped: {t:?}");
    assert_same(&t, &f);
    let tar_name = t["000.png"]["image"].as_str().unwrap().to_string();
    assert!(tar_name.ends_with("shard-000007.tar/000.png"), "{tar_name}");
}
