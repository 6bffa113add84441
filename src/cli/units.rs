//! Work units and shards: how `detect` cuts its inputs so that many workers can share an archive.
//!
//! Plain image paths (arguments, folders searched recursively in name order, `--list` lines) are cut into units of
//! `--unit-size` in input order, named `unit-000000`, `unit-000001`, …; each `.tar` is a unit of its own, named after
//! its file stem and numbered after the plain units in argument order. A shard K/N takes the units whose index is
//! K mod N. Everything depends only on the inputs, so every machine computes the same assignment.

use std::path::{Path, PathBuf};

/// Where a unit's images come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    Files(Vec<PathBuf>),
    /// Read as a stream, entry by entry (webdataset shards).
    Tar(PathBuf),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Unit {
    pub index: usize,
    pub name: String,
    pub source: Source,
}

/// The units of a run and whether any input came from a folder, a list or a tar (bucketing's default).
pub struct Inputs {
    pub units: Vec<Unit>,
    pub archive_like: bool,
}

pub fn is_tar(p: &Path) -> bool {
    p.extension().is_some_and(|e| e.eq_ignore_ascii_case("tar")) && !p.is_dir()
}

/// The image argument `-`: one image read from standard input.
pub const STDIN: &str = "-";

/// Collects the inputs: each argument (folders searched recursively for image and tar files), then the lines of
/// `list` (`-`: standard input; a line naming a folder is searched like a folder argument). A missing path is kept,
/// so that it is reported as an error row in its turn.
pub fn collect(args: &[PathBuf], list: Option<&Path>, unit_size: usize) -> anyhow::Result<Inputs> {
    let stdin = Path::new(STDIN);
    if list == Some(stdin) && args.iter().any(|a| a == stdin) {
        anyhow::bail!(
            "the image argument - and --list - both read standard input: use one of them"
        );
    }
    let mut paths = Vec::new();
    let mut archive_like = list.is_some();
    let mut seen = Seen::default();
    let mut add = |p: PathBuf, paths: &mut Vec<PathBuf>| -> anyhow::Result<bool> {
        if p.is_dir() {
            walk(&p, paths, &mut seen)?;
            return Ok(true);
        }
        paths.push(p);
        Ok(false)
    };
    for p in args {
        archive_like |= add(p.clone(), &mut paths)?;
    }
    if let Some(l) = list {
        let bytes = if l == stdin {
            let mut b = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut b)
                .map_err(|e| anyhow::anyhow!("--list -: reading standard input: {e}"))?;
            b
        } else {
            std::fs::read(l).map_err(|e| anyhow::anyhow!("--list {}: {e}", l.display()))?
        };
        for line in bytes.split(|&b| b == b'\n') {
            let line = line.trim_ascii();
            if !line.is_empty() {
                add(path_from_bytes(line), &mut paths)?;
            }
        }
    }
    let (tars, files): (Vec<PathBuf>, Vec<PathBuf>) = paths.into_iter().partition(|p| is_tar(p));
    archive_like |= !tars.is_empty();
    let mut units: Vec<Unit> = files
        .chunks(unit_size.max(1))
        .enumerate()
        .map(|(i, c)| Unit {
            index: i,
            name: format!("unit-{i:06}"),
            source: Source::Files(c.to_vec()),
        })
        .collect();
    for t in tars {
        let name = t
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        if let Some(u) = units.iter().find(|u| u.name == name) {
            let other = match &u.source {
                Source::Tar(p) => p.display().to_string(),
                Source::Files(_) => "a unit of plain images".into(),
            };
            anyhow::bail!(
                "{} and {other} would both write unit '{name}': give each tar a distinct file name, or run them with \
                 separate --out folders",
                t.display()
            );
        }
        units.push(Unit {
            index: units.len(),
            name,
            source: Source::Tar(t),
        });
    }
    Ok(Inputs {
        units,
        archive_like,
    })
}

/// A list line as a path: its bytes as they are on Unix, where paths need not be UTF-8; elsewhere a line that is not
/// UTF-8 becomes a path that does not exist, so it is that line's error row and the others still run.
#[cfg(unix)]
fn path_from_bytes(b: &[u8]) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    PathBuf::from(std::ffi::OsStr::from_bytes(b))
}

#[cfg(not(unix))]
fn path_from_bytes(b: &[u8]) -> PathBuf {
    PathBuf::from(String::from_utf8_lossy(b).into_owned())
}

/// Folders and files already taken, by canonical path: symlinks are followed, but a loop or a second link to the
/// same folder or file does not take its images again.
#[derive(Default)]
struct Seen(std::collections::HashSet<PathBuf>);

impl Seen {
    fn first(&mut self, p: &Path) -> bool {
        self.0
            .insert(std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf()))
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>, seen: &mut Seen) -> anyhow::Result<()> {
    if !seen.first(dir) {
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, out, seen)?;
        } else if (sshface::image_io::is_image_path(&p) || is_tar(&p)) && seen.first(&p) {
            out.push(p);
        }
    }
    Ok(())
}

/// Shard K of N, and where it came from (for the log line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    pub k: usize,
    pub n: usize,
    pub from: String,
}

impl Shard {
    pub fn takes(&self, unit: &Unit) -> bool {
        unit.index % self.n == self.k
    }
}

fn parse_num(what: &str, v: &str) -> Result<usize, String> {
    v.trim()
        .parse()
        .map_err(|_| format!("{what}='{v}': expected a non-negative integer"))
}

/// The shard: `--shard K/N`, else Slurm's array variables (K = (SLURM_ARRAY_TASK_ID − SLURM_ARRAY_TASK_MIN) /
/// SLURM_ARRAY_TASK_STEP, N = `--shards` or SLURM_ARRAY_TASK_COUNT), else Kubernetes' JOB_COMPLETION_INDEX with
/// `--shards N`; `None` runs every unit.
pub fn shard(
    arg: Option<&str>,
    shards: Option<usize>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Option<Shard>, String> {
    let (k, n, from) = if let Some(s) = arg {
        let (k, n) = s
            .split_once('/')
            .ok_or_else(|| format!("--shard '{s}': expected K/N such as 0/4"))?;
        (
            parse_num("--shard K", k)?,
            parse_num("--shard N", n)?,
            "--shard".to_string(),
        )
    } else if let Some(id) = env("SLURM_ARRAY_TASK_ID") {
        let id = parse_num("SLURM_ARRAY_TASK_ID", &id)?;
        let min = env("SLURM_ARRAY_TASK_MIN")
            .map(|v| parse_num("SLURM_ARRAY_TASK_MIN", &v))
            .transpose()?
            .unwrap_or(0);
        let step = env("SLURM_ARRAY_TASK_STEP")
            .map(|v| parse_num("SLURM_ARRAY_TASK_STEP", &v))
            .transpose()?
            .unwrap_or(1)
            .max(1);
        let n = match shards {
            Some(n) => n,
            None => parse_num(
                "SLURM_ARRAY_TASK_COUNT",
                &env("SLURM_ARRAY_TASK_COUNT").ok_or(
                    "SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not: pass --shards N",
                )?,
            )?,
        };
        let k = id.checked_sub(min).ok_or(format!(
            "SLURM_ARRAY_TASK_ID={id} is below SLURM_ARRAY_TASK_MIN={min}"
        ))? / step;
        (k, n, format!("SLURM_ARRAY_TASK_ID={id}"))
    } else if let Some(idx) = env("JOB_COMPLETION_INDEX") {
        let k = parse_num("JOB_COMPLETION_INDEX", &idx)?;
        let n = shards.ok_or(format!(
            "JOB_COMPLETION_INDEX={k} is set (a Kubernetes Indexed Job): pass --shards N, the Job's completions"
        ))?;
        (k, n, format!("JOB_COMPLETION_INDEX={k}"))
    } else if let Some(n) = shards {
        return Err(format!(
            "--shards {n} needs SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX in the environment; use --shard K/{n} to \
             choose the shard by hand"
        ));
    } else {
        return Ok(None);
    };
    if n == 0 || k >= n {
        return Err(format!("shard {k}/{n} (from {from}): expected 0 <= K < N"));
    }
    Ok(Some(Shard { k, n, from }))
}

#[cfg(test)]
mod tests {
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
}
