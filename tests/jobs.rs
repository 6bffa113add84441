//! The scheduler side of `detect`: exit codes, shards from Slurm's and Kubernetes' variables, the example job files
//! in deploy/ run as written, and the device choice.

mod archive_support;
mod common;

use std::path::Path;
use std::process::Command;

use archive_support::{fixture, run, sshface};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");
const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// Usage errors exit 2 before any GPU work; a missing adapter exits 3.
#[test]
fn exit_codes_for_usage_and_device() {
    let dir = common::scratch("archive-codes");
    let img = format!("{DATA}/camera.png");
    for (args, envs, want) in [
        (vec!["--shard", "3/3"], vec![], "0 <= K < N"),
        (vec!["--shard", "x"], vec![], "K/N"),
        (vec!["--format", "xml"], vec![], "xml"),
        (vec!["--device", "gpu1"], vec![], "gpu1"),
        (vec![], vec![("JOB_COMPLETION_INDEX", "2")], "--shards N"),
        (vec!["--shards", "4"], vec![], "--shard K/4"),
        (vec!["--model", "ssh-vgg16", "--bucket"], vec![], "--scale"),
        (vec!["--overwrite"], vec![], "--out"),
    ] {
        let (code, err, _) = run(sshface().arg("detect").args(&args).envs(envs).arg(&img));
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
    let (code, err, _) = run(sshface()
        .args(["detect", &img, "--out"])
        .arg(dir.join("o"))
        .env("WGPU_ADAPTER_NAME", "no-such-adapter"));
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("no-such-adapter"), "{err}");
    if common::gpu().is_none() {
        return;
    }
    let (code, err, _) = run(sshface().args(["detect", "--device", "0", &img]));
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("[--device 0]") && err.contains("1 images, 1 faces, 0 failed"),
        "{err}"
    );
    let (code, err, _) = run(sshface().args(["detect", "--device", "99", &img]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--device 99"), "{err}");
}

/// Slurm array variables and Kubernetes' JOB_COMPLETION_INDEX pick the same units as --shard; the Slurm script
/// and the Indexed Job's command line in deploy/ run as written.
#[test]
fn scheduler_shards_and_deploy_examples() {
    if common::gpu().is_none() {
        return;
    }
    let dir = common::scratch("archive-sched");
    let files = fixture(&dir.join("in"), 5, &[]);
    let list = dir.join("paths.txt");
    let text: String = files.iter().map(|f| format!("{}\n", f.display())).collect();
    std::fs::write(&list, text).unwrap();
    let units = |out: &Path| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(out)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    // The Slurm script with an array 1-7:2 (task ids 1, 3, 5, 7): task 3 is shard 1 of 4.
    let slurm = dir.join("slurm");
    let (code, err, _) = run(Command::new("bash")
        .arg(format!("{REPO}/deploy/slurm/detect-array.sbatch"))
        .arg(&list)
        .arg(&slurm)
        .args(["--unit-size", "1"])
        .env("SSHFACE", env!("CARGO_BIN_EXE_sshface"))
        .envs([
            ("SLURM_ARRAY_TASK_ID", "3"),
            ("SLURM_ARRAY_TASK_MIN", "1"),
            ("SLURM_ARRAY_TASK_STEP", "2"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
        ]));
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("shard 1/4 (from SLURM_ARRAY_TASK_ID=3)"),
        "{err}"
    );
    assert_eq!(units(&slurm), ["unit-000001.jsonl"]);
    // The Indexed Job's args with /data pointing at the scratch folder; --shards must equal completions.
    let yaml = std::fs::read_to_string(format!("{REPO}/deploy/kubernetes/detect-indexed-job.yaml"))
        .unwrap();
    assert!(yaml.contains("completionMode: Indexed"));
    let completions = yaml
        .lines()
        .find_map(|l| l.trim().strip_prefix("completions: "))
        .unwrap()
        .to_string();
    let args_line = yaml
        .lines()
        .find_map(|l| l.trim().strip_prefix("args: "))
        .unwrap();
    let args: Vec<String> = serde_json::from_str::<Vec<String>>(args_line)
        .unwrap()
        .into_iter()
        .map(|a| {
            a.replace("/data/paths.txt", list.to_str().unwrap())
                .replace("/data", dir.to_str().unwrap())
        })
        .collect();
    let shards = args
        .iter()
        .position(|a| a == "--shards")
        .map(|i| args[i + 1].clone());
    assert_eq!(shards.as_deref(), Some(completions.as_str()));
    let (code, err, _) = run(sshface()
        .args(&args)
        .args(["--unit-size", "1"])
        .env("JOB_COMPLETION_INDEX", "3"));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("from JOB_COMPLETION_INDEX=3"), "{err}");
    assert_eq!(units(&dir.join("faces")), ["unit-000003.jsonl"]);
    // An empty CUDA_VISIBLE_DEVICES assigns no GPU: the best adapter, as without it.
    let (code, err, _) = run(sshface()
        .args(["detect", files[0].to_str().unwrap()])
        .env("CUDA_VISIBLE_DEVICES", ""));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("[best adapter]"), "{err}");
}
