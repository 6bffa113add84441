//! The detector's plans: building the graph of a call's images (grouped by input size, split to fit a binding),
//! the cache of compiled plans, and running one: inputs up, counts and kept rows back, rows to [`Face`]s.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use image::RgbImage;

use super::{Detector, Face, Model, Net};
use crate::error::{Error, Result};
use crate::gpu::plan::{bytes_to_f32, bytes_to_u32};
use crate::gpu::{Graph, Plan, TensorId};
use crate::model::pipeline::{self, GroupIo, Protocol, Thresholds};
use crate::model::retinaface_mnv2 as rf;
use crate::ops::blur::{Blur, BlurMode};
use crate::ops::preprocess::pack_rgb8;
use crate::options::{finish_faces, scale_faces};

/// Each image's faces, and the bytes of extra ranges read back with them.
pub(super) type FacesAndBytes = (Vec<Vec<Face>>, Vec<Vec<u8>>);

/// A plan's key: image sizes, whether it dumps, the (score, NMS) threshold bits it selects with, and the
/// anonymisation (mode, mask scale bits) it appends.
pub(super) type PlanKey = (Vec<[usize; 2]>, bool, [u32; 2], Option<(BlurMode, u32)>);

pub(super) struct Compiled {
    pub(super) key: PlanKey,
    /// Held from writing the inputs to reading the outputs, so threads sharing the plan do not interleave.
    pub(super) lock: Mutex<()>,
    pub(super) plan: Plan,
    pub(super) groups: Vec<GroupIo>,
    /// Per group, the anonymised image of each of its images (empty without anonymisation).
    pub(super) anonymised: Vec<Vec<TensorId>>,
}

/// Plans kept per distinct list of image sizes (video frames reuse one; archives of mixed sizes cycle).
pub(super) const PLAN_CACHE: usize = 4;
/// Cached plans beyond the newest are dropped while their arenas together exceed this, so archives of mixed sizes
/// do not pile up GPU memory.
pub(super) const PLAN_CACHE_BYTES: u64 = 1 << 30;

impl Detector {
    /// Runs the plan on `images` (as the network sees them; `factors`: original pixels per network pixel);
    /// returns each image's faces, best first, at most `max_faces`, and the bytes of the `extra` ranges, read back
    /// with the kept rows.
    pub(super) fn run_rows(
        &self,
        c: &Compiled,
        images: &[RgbImage],
        factors: &[[f32; 2]],
        max_faces: Option<usize>,
        extra: &[(TensorId, u64, u64)],
    ) -> Result<FacesAndBytes> {
        let _guard = c.lock.lock().unwrap();
        self.write_inputs(c, images)?;
        // Counts first; then only the kept rows of each image come back.
        let read: Vec<TensorId> = c.groups.iter().map(|gr| gr.counts).collect();
        let counts: Vec<Vec<u32>> = c
            .plan
            .run(&self.ctx, &read)?
            .iter()
            .map(|b| bytes_to_u32(b))
            .collect();
        let mut ranges = Vec::new();
        let mut owners = Vec::new();
        for (k, gr) in c.groups.iter().enumerate() {
            for (j, &(idx, _)) in gr.images.iter().enumerate() {
                let kept = (counts[k][2 * j] as usize).min(gr.capacity) as u64;
                if counts[k][2 * j + 1] != 0 {
                    self.truncated.fetch_add(1, Ordering::Relaxed);
                }
                ranges.push((gr.rows, (j * gr.capacity * 64) as u64, kept * 64));
                owners.push(idx);
            }
        }
        let n_rows = ranges.len();
        ranges.extend_from_slice(extra);
        let mut rows = c.plan.read_ranges(&self.ctx, &ranges)?;
        let extra_bytes = rows.split_off(n_rows);
        let mut faces = vec![Vec::new(); images.len()];
        for (idx, bytes) in owners.into_iter().zip(rows) {
            let mut f: Vec<Face> = bytes_to_f32(&bytes)
                .chunks_exact(16)
                .map(|r| row_to_face(r, self.model))
                .collect();
            // NMS emits rows in descending score; keep that order, documented as "best first".
            f.sort_by(|a, b| b.score.total_cmp(&a.score));
            let f = scale_faces(f, factors[idx]);
            let (w, h) = (
                images[idx].width() as f32 * factors[idx][0],
                images[idx].height() as f32 * factors[idx][1],
            );
            faces[idx] = finish_faces(f, (!self.raw_boxes).then_some((w, h)), max_faces);
        }
        Ok((faces, extra_bytes))
    }

    pub(super) fn write_inputs(&self, c: &Compiled, images: &[RgbImage]) -> Result<()> {
        for gr in &c.groups {
            for (idx, pieces) in &gr.images {
                let packed = pack_rgb8(images[*idx].as_raw());
                for &(word0, t) in pieces {
                    let len = c.plan.info(t).len();
                    let words = packed.get(word0..word0 + len).ok_or_else(|| {
                        crate::error::Error::shape(
                            format!("image{idx}.rgb8"),
                            format!(
                                "band of words {word0}..{} past the {} words of the image",
                                word0 + len,
                                packed.len()
                            ),
                        )
                    })?;
                    c.plan.write(&self.ctx, t, words)?;
                }
            }
        }
        Ok(())
    }

    /// retinaface-mnv2 with [`Protocol::Scale`]: the images resized by the factor on the CPU, and per image the
    /// original pixels per network pixel in x and y; otherwise `None` and factors of 1.
    pub(super) fn input_scale(
        &self,
        images: &[RgbImage],
    ) -> (Option<Vec<RgbImage>>, Vec<[f32; 2]>) {
        let ones = vec![[1.0, 1.0]; images.len()];
        let s = match (&self.net, self.protocol) {
            (Net::Retina(_), Protocol::Scale(s)) if s != 1.0 => s,
            _ => return (None, ones),
        };
        let mut factors = Vec::with_capacity(images.len());
        let scaled = images
            .iter()
            .map(|img| {
                let (w, h) = img.dimensions();
                let r = |v: u32| ((v as f64 * s).round() as u32).max(1);
                let (nw, nh) = (r(w), r(h));
                factors.push([w as f32 / nw as f32, h as f32 / nh as f32]);
                image::imageops::resize(img, nw, nh, image::imageops::FilterType::Triangle)
            })
            .collect();
        (Some(scaled), factors)
    }

    pub(super) fn compiled(
        &self,
        images: &[RgbImage],
        dump: bool,
        th: Thresholds,
    ) -> Result<Arc<Compiled>> {
        self.compiled_for(images, dump, th, None)
    }

    pub(super) fn compiled_for(
        &self,
        images: &[RgbImage],
        dump: bool,
        th: Thresholds,
        blur: Option<&Blur>,
    ) -> Result<Arc<Compiled>> {
        let sizes: Vec<[usize; 2]> = images
            .iter()
            .map(|i| [i.height() as usize, i.width() as usize])
            .collect();
        for (i, s) in sizes.iter().enumerate() {
            if s[0] == 0 || s[1] == 0 {
                return Err(Error::Empty {
                    name: format!("image {i}"),
                    shape: vec![s[0], s[1], 3],
                });
            }
        }
        let key = (
            sizes,
            dump,
            [th.score.to_bits(), th.nms.to_bits()],
            blur.map(|b| (b.mode, b.mask_scale.to_bits())),
        );
        self.ctx.check_usable()?;
        let mut cache = self.plans.lock().unwrap();
        if let Some(pos) = cache.iter().position(|c| c.key == key) {
            let c = cache.remove(pos);
            cache.push(c.clone());
            return Ok(c);
        }
        let c = match self.build_plan(key.clone()) {
            // The cached plans' arenas may be what fills the device: drop them and try once more.
            Err(Error::OutOfMemory { .. }) if !cache.is_empty() => {
                cache.clear();
                self.build_plan(key)?
            }
            r => r?,
        };
        let c = Arc::new(c);
        self.compiled.fetch_add(1, Ordering::Relaxed);
        cache.push(c.clone());
        while cache.len() > 1
            && (cache.len() > PLAN_CACHE
                || cache.iter().map(|c| c.plan.arena_bytes()).sum::<u64>() > PLAN_CACHE_BYTES)
        {
            cache.remove(0);
        }
        Ok(c)
    }

    /// Appends the detection graph of one group; returns its I/O and the bytes of its largest tensor.
    // The arguments are GroupSpec's fields; a second struct for them would only be built here.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn append_group(
        &self,
        g: &mut Graph,
        k: usize,
        hw: [usize; 2],
        idxs: &[usize],
        sizes: &[[usize; 2]],
        dump: bool,
        th: Thresholds,
    ) -> Result<(GroupIo, u64)> {
        let spec = pipeline::GroupSpec {
            k,
            hw,
            idxs,
            sizes,
            th,
            dump,
            limit: self.limit,
        };
        let io = match &self.net {
            Net::Retina(net) => pipeline::retina_group(net, g, &spec)?,
            Net::Vgg(net) => pipeline::vgg_group(net, g, &spec, self.protocol)?,
        };
        Ok((io, g.max_tensor_bytes()))
    }

    pub(super) fn build_plan(&self, key: PlanKey) -> Result<Compiled> {
        let th = Thresholds {
            score: f32::from_bits(key.2[0]),
            nms: f32::from_bits(key.2[1]),
        };
        let (mut g, ios) = self.graph(&key.0, key.1, th)?;
        let anonymised = match key.3 {
            Some((mode, bits)) => {
                let b = Blur {
                    mode,
                    mask_scale: f32::from_bits(bits),
                };
                crate::model::anonymise::append(&mut g, &ios, &key.0, &b)?
            }
            None => Vec::new(),
        };
        let plan = g.compile(&self.ctx)?;
        Ok(Compiled {
            key,
            lock: Mutex::new(()),
            plan,
            groups: ios,
            anonymised,
        })
    }

    pub(super) fn graph(
        &self,
        sizes: &[[usize; 2]],
        dump: bool,
        th: Thresholds,
    ) -> Result<(Graph, Vec<GroupIo>)> {
        let mut g = self.numerics.graph();
        // Group images by network input size (retinaface: padded size; ssh-vgg16: original size, hence equal
        // scales), keeping first-appearance order.
        let group_key = |s: [usize; 2]| match self.net {
            Net::Retina(_) => rf::padded_size(s),
            Net::Vgg(_) => s,
        };
        let mut groups: Vec<([usize; 2], Vec<usize>)> = Vec::new();
        for (i, &s) in sizes.iter().enumerate() {
            let p = group_key(s);
            match groups.iter_mut().find(|(q, _)| *q == p) {
                Some((_, v)) => v.push(i),
                None => groups.push((p, vec![i])),
            }
        }
        // A batch makes every feature map N times larger: split a group so that its largest tensor still fits one
        // storage binding (an image that does not fit alone fails at compile with the tensor, size and limit).
        let mut batches: Vec<([usize; 2], Vec<usize>)> = Vec::new();
        for (gk, idxs) in groups {
            let one = self.append_group(
                &mut self.numerics.graph(),
                0,
                gk,
                &idxs[..1],
                sizes,
                false,
                th,
            )?;
            let per_image = one.1.max(1);
            let n_max = (self.limit / per_image).max(1) as usize;
            batches.extend(idxs.chunks(n_max).map(|c| (gk, c.to_vec())));
        }
        let mut ios = Vec::new();
        for (k, (gk, idxs)) in batches.iter().enumerate() {
            ios.push(self.append_group(&mut g, k, *gk, idxs, sizes, dump, th)?.0);
        }
        Ok((g, ios))
    }
}

fn row_to_face(r: &[f32], model: Model) -> Face {
    let landmarks = (model == Model::RetinafaceMnv2)
        .then(|| std::array::from_fn(|k| [r[4 + 2 * k], r[5 + 2 * k]]));
    Face {
        bbox: [r[0], r[1], r[2], r[3]],
        score: r[15],
        landmarks,
    }
}
