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

/// Folders and files already taken: symlinks are followed, but a loop, or a second link to the same folder or file,
/// does not take its images again. Keyed by (device, inode) on Unix: 16 bytes a file and one `stat`, where a
/// canonical path would cost a path resolution and a path's memory per file of a large archive.
#[derive(Default)]
struct Seen(std::collections::HashSet<FileKey>);

#[cfg(unix)]
type FileKey = (u64, u64);
#[cfg(not(unix))]
type FileKey = PathBuf;

impl Seen {
    /// Whether `p` is seen for the first time (a path that cannot be examined counts as new: it becomes an error
    /// row in its turn).
    fn first(&mut self, p: &Path) -> bool {
        #[cfg(unix)]
        let key = {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()))
        };
        #[cfg(not(unix))]
        let key = std::fs::canonicalize(p).ok();
        key.is_none_or(|k| self.0.insert(k))
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
mod tests;
