//! Shards, units and the folder walk.

use super::*;

fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
    move |k| pairs.iter().find(|p| p.0 == k).map(|p| p.1.to_string())
}

#[test]
fn shard_sources_and_precedence() {
    let s = shard(Some("2/5"), None, env(&[("SLURM_ARRAY_TASK_ID", "0")]))
        .unwrap()
        .unwrap();
    assert_eq!((s.k, s.n, s.from.as_str()), (2, 5, "--shard"));
    let slurm = &[
        ("SLURM_ARRAY_TASK_ID", "7"),
        ("SLURM_ARRAY_TASK_MIN", "1"),
        ("SLURM_ARRAY_TASK_STEP", "2"),
        ("SLURM_ARRAY_TASK_COUNT", "4"),
        ("JOB_COMPLETION_INDEX", "0"),
    ];
    let s = shard(None, None, env(slurm)).unwrap().unwrap();
    assert_eq!(
        (s.k, s.n),
        (3, 4),
        "array 1-7:2 → task ids 1,3,5,7 → shards 0..3"
    );
    let s = shard(None, Some(8), env(&[("JOB_COMPLETION_INDEX", "5")]))
        .unwrap()
        .unwrap();
    assert_eq!((s.k, s.n), (5, 8));
    assert_eq!(shard(None, None, env(&[])).unwrap(), None);
}

#[test]
fn shard_errors_name_the_source() {
    for (arg, shards, vars, want) in [
        (Some("4/4"), None, &[][..], "0 <= K < N"),
        (Some("1-4"), None, &[][..], "K/N"),
        (
            None,
            None,
            &[("JOB_COMPLETION_INDEX", "1")][..],
            "--shards N",
        ),
        (None, Some(3), &[][..], "--shard K/3"),
        (
            None,
            None,
            &[("SLURM_ARRAY_TASK_ID", "x")][..],
            "SLURM_ARRAY_TASK_ID='x'",
        ),
        (
            None,
            None,
            &[
                ("SLURM_ARRAY_TASK_ID", "9"),
                ("SLURM_ARRAY_TASK_COUNT", "3"),
            ][..],
            "9/3",
        ),
    ] {
        let owned: Vec<(String, String)> = vars
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        let e = shard(arg, shards, |k| {
            owned.iter().find(|p| p.0 == k).map(|p| p.1.clone())
        })
        .unwrap_err();
        assert!(e.contains(want), "{arg:?} {shards:?} {vars:?}: {e}");
    }
}

#[cfg(unix)]
#[test]
fn symlink_loops_and_list_folders_take_each_file_once() {
    let d = std::env::temp_dir().join(format!("sshface-units-loop-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(d.join("a/b")).unwrap();
    std::fs::write(d.join("a/b/x.png"), b"").unwrap();
    std::fs::write(d.join("a/y.GIF"), b"").unwrap();
    std::os::unix::fs::symlink(d.join("a"), d.join("a/b/loop")).unwrap();
    std::os::unix::fs::symlink(d.join("a/b/x.png"), d.join("a/b/z.png")).unwrap();
    let list = d.join("list.txt");
    let mut bytes = format!("{}\n", d.join("a/b").display()).into_bytes();
    bytes.extend_from_slice(b"bad-\xff.png\n");
    std::fs::write(&list, bytes).unwrap();
    let inputs = collect(&[d.join("a")], Some(&list), 100).unwrap();
    let Source::Files(files) = &inputs.units[0].source else {
        panic!()
    };
    let names: Vec<String> = files
        .iter()
        .map(|p| {
            p.strip_prefix(&d)
                .unwrap_or(p)
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    // The loop and the second link are skipped; the listed folder was already walked; the non-UTF-8 line stays
    // one path of its own.
    assert_eq!(
        names,
        ["a/b/x.png", "a/y.GIF", "bad-\u{fffd}.png"],
        "{names:?}"
    );
}

#[test]
fn units_cut_files_and_give_each_tar_its_own() {
    let p = |s: &str| PathBuf::from(s);
    let args: Vec<PathBuf> = [
        "a.jpg",
        "x/one.tar",
        "b.png",
        "c.png",
        "y/two.TAR",
        "d.jpg",
        "e.jpg",
    ]
    .iter()
    .map(|s| p(s))
    .collect();
    let inputs = collect(&args, None, 2).unwrap();
    let names: Vec<&str> = inputs.units.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(
        names,
        ["unit-000000", "unit-000001", "unit-000002", "one", "two"]
    );
    assert_eq!(
        inputs.units[1].source,
        Source::Files(vec![p("c.png"), p("d.jpg")])
    );
    assert_eq!(inputs.units[4].source, Source::Tar(p("y/two.TAR")));
    assert!(inputs.units.iter().enumerate().all(|(i, u)| u.index == i));
    assert!(inputs.archive_like);
    assert!(!collect(&[p("a.jpg")], None, 2).unwrap().archive_like);
    let e = collect(&[p("x/one.tar"), p("y/one.tar")], None, 2)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("x/one.tar") && e.contains("y/one.tar"), "{e}");
    let s = Shard {
        k: 1,
        n: 2,
        from: String::new(),
    };
    let taken: Vec<usize> = inputs
        .units
        .iter()
        .filter(|u| s.takes(u))
        .map(|u| u.index)
        .collect();
    assert_eq!(taken, [1, 3]);
}
