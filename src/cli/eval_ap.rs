//! `sshface eval --gt DIR [--pred DIR]`: reads the toolkit's ground truth (`wider_face_val.mat` and the settings'
//! `wider_{easy,medium,hard}_val.mat`) and the result files, prints Easy / Medium / Hard AP, writes the PR curves as
//! CSV and a PNG plot.

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context};

use super::mat::{self, Value};
use super::wider_ap::{evaluate, normalise, GtImage, Xywh};

/// The toolkit's thresholds per curve.
const THRESHOLDS: usize = 1000;
const SETTINGS: [(&str, &str); 3] = [("Easy", "easy"), ("Medium", "medium"), ("Hard", "hard")];

fn load_mat(path: &Path) -> anyhow::Result<std::collections::HashMap<String, Value>> {
    let bytes = std::fs::read(path).with_context(|| format!("ground truth {}", path.display()))?;
    mat::parse(&bytes).map_err(|e| anyhow::anyhow!("ground truth {}: {e}", path.display()))
}

fn var<'a>(
    vars: &'a std::collections::HashMap<String, Value>,
    path: &Path,
    name: &str,
) -> anyhow::Result<&'a Value> {
    vars.get(name).with_context(|| {
        format!(
            "ground truth {}: no variable '{name}' (expected a WIDER FACE MAT file)",
            path.display()
        )
    })
}

/// Reads one result file: name line, count line, then `x y w h score` per detection.
fn read_pred(path: &Path) -> anyhow::Result<Vec<(Xywh, f64)>> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "result file {} (one per ground-truth image is expected)",
            path.display()
        )
    })?;
    let lines: Vec<&str> = text.lines().collect();
    let bad = |what: String| anyhow::anyhow!("result file {}: {what}", path.display());
    let n: usize = lines
        .get(1)
        .and_then(|l| l.trim().parse().ok())
        .ok_or_else(|| bad("line 2 must hold the number of detections".into()))?;
    (0..n)
        .map(|k| {
            let v: Vec<f64> = lines
                .get(k + 2)
                .map(|l| {
                    l.split_whitespace()
                        .filter_map(|t| t.parse().ok())
                        .collect()
                })
                .unwrap_or_default();
            if v.len() < 5 {
                return Err(bad(format!(
                    "line {} must hold x y w h score (count {n})",
                    k + 3
                )));
            }
            Ok(([v[0], v[1], v[2], v[3]], v[4]))
        })
        .collect()
}

/// Computes the three APs; writes `pr_curves.csv` and `pr_curves.png` to `curves`; returns (setting, AP).
pub fn run(pred: &Path, gt: &Path, curves: &Path) -> anyhow::Result<Vec<(&'static str, f64)>> {
    let main = gt.join("wider_face_val.mat");
    let vars = load_mat(&main)?;
    let err = |e: String| anyhow::anyhow!("ground truth {}: {e}", main.display());
    let events = var(&vars, &main, "event_list")?
        .cells("event_list")
        .map_err(err)?;
    let files = var(&vars, &main, "file_list")?
        .cells("file_list")
        .map_err(err)?;
    let boxes = var(&vars, &main, "face_bbx_list")?
        .cells("face_bbx_list")
        .map_err(err)?;
    if files.len() != events.len() || boxes.len() != events.len() {
        bail!(
            "ground truth {}: event_list, file_list and face_bbx_list differ in length",
            main.display()
        );
    }
    // Flattened over events, in the toolkit's order.
    let mut faces: Vec<Vec<Xywh>> = Vec::new();
    let mut preds = Vec::new();
    for (e, ev) in events.iter().enumerate() {
        let event = ev.text("event_list").map_err(err)?;
        let fl = files[e]
            .cells(&format!("file_list{{{}}}", e + 1))
            .map_err(err)?;
        let bl = boxes[e]
            .cells(&format!("face_bbx_list{{{}}}", e + 1))
            .map_err(err)?;
        if fl.len() != bl.len() {
            bail!(
                "ground truth {}: event {event}: {} files but {} box lists",
                main.display(),
                fl.len(),
                bl.len()
            );
        }
        for (f, b) in fl.iter().zip(bl) {
            let name = f.text("file_list").map_err(err)?;
            let rows = b
                .rows(&format!("face_bbx_list of {event}/{name}"), 4)
                .map_err(err)?;
            faces.push(rows.into_iter().map(|r| [r[0], r[1], r[2], r[3]]).collect());
            preds.push(read_pred(&pred.join(event).join(format!("{name}.txt")))?);
        }
    }
    normalise(&mut preds);
    let mut results = Vec::new();
    for (label, file) in SETTINGS {
        let path = gt.join(format!("wider_{file}_val.mat"));
        let sv = load_mat(&path)?;
        let serr = |e: String| anyhow::anyhow!("ground truth {}: {e}", path.display());
        let lists = var(&sv, &path, "gt_list")?.cells("gt_list").map_err(serr)?;
        let mut gt_images = Vec::with_capacity(faces.len());
        for l in lists {
            for keep in l.cells("gt_list{event}").map_err(serr)? {
                let keep = keep.numbers("gt_list{event}{image}").map_err(serr)?;
                let f = faces.get(gt_images.len()).cloned().unwrap_or_default();
                gt_images.push(GtImage {
                    faces: f,
                    keep: keep.iter().map(|&k| k as usize - 1).collect(),
                });
            }
        }
        if gt_images.len() != faces.len() {
            bail!(
                "ground truth {}: gt_list covers {} images, wider_face_val.mat {}",
                path.display(),
                gt_images.len(),
                faces.len()
            );
        }
        let (curve, ap) = evaluate(&preds, &gt_images, THRESHOLDS);
        results.push((label, ap, curve));
    }
    std::fs::create_dir_all(curves).with_context(|| format!("--curves {}", curves.display()))?;
    let csv = curves.join("pr_curves.csv");
    let mut s = String::from("threshold");
    for (l, _, _) in &results {
        s.push_str(&format!(",{l}_precision,{l}_recall"));
    }
    s.push('\n');
    for t in 0..THRESHOLDS {
        s.push_str(&format!("{}", 1.0 - (t + 1) as f64 / THRESHOLDS as f64));
        for (_, _, c) in &results {
            s.push_str(&format!(",{},{}", c[t][0], c[t][1]));
        }
        s.push('\n');
    }
    std::fs::File::create(&csv)
        .and_then(|mut f| f.write_all(s.as_bytes()))
        .with_context(|| format!("writing {}", csv.display()))?;
    let png = curves.join("pr_curves.png");
    let plotted: Vec<(&str, f64, &[[f64; 2]])> = results
        .iter()
        .map(|(l, ap, c)| (*l, *ap, c.as_slice()))
        .collect();
    let labels: Vec<String> = plotted.iter().map(|p| p.0.to_uppercase()).collect();
    let plotted: Vec<(&str, f64, &[[f64; 2]])> = plotted
        .iter()
        .zip(&labels)
        .map(|(p, l)| (l.as_str(), p.1, p.2))
        .collect();
    super::visual::save(&super::pr_plot::plot(&plotted), &png)?;
    eprintln!("sshface: wrote {} and {}", csv.display(), png.display());
    Ok(results.into_iter().map(|(l, ap, _)| (l, ap)).collect())
}
