//! Sliding-window geometry shared by convolutions and pools: kernel, strides, dilations, pads
//! (explicit or `auto_pad`), `ceil_mode`, and the output size.
//!
//! Owns: [`Window`], always padded to three spatial dims (1-D and 2-D ops become 3-D ones with
//! leading size-1 dims), so each kernel is written once.
//! Does not own: what is computed inside a window.

use super::{Ctx, OpResult, invalid, unsupported};
use crate::graph::Attributes;

/// Geometry of a windowed op over up to three spatial dims (leading dims padded with 1).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Window {
    /// Number of spatial dims of the op (1, 2 or 3).
    pub rank: usize,
    /// Input spatial size.
    pub input: [usize; 3],
    /// Kernel size.
    pub kernel: [usize; 3],
    /// Strides.
    pub strides: [usize; 3],
    /// Dilations.
    pub dilations: [usize; 3],
    /// Padding before each dim.
    pub pad_begin: [usize; 3],
    /// Padding after each dim.
    pub pad_end: [usize; 3],
    /// Output spatial size.
    pub output: [usize; 3],
}

fn pad3(v: &[usize], fill: usize) -> [usize; 3] {
    let mut out = [fill; 3];
    let offset = 3 - v.len();
    out[offset..].copy_from_slice(v);
    out
}

/// A positive-integer list attribute of length `rank`, or `default` everywhere.
fn dims_attr(ctx: &Ctx, name: &str, rank: usize, default: usize) -> OpResult<Vec<usize>> {
    match ctx.node.attr_ints(name) {
        None => Ok(vec![default; rank]),
        Some(v) if v.len() == rank && v.iter().all(|&x| x >= 1) => {
            Ok(v.iter().map(|&x| x as usize).collect())
        }
        Some(v) => Err(invalid(format!(
            "{name} = {v:?} must be {rank} positive values"
        ))),
    }
}

impl Window {
    /// The window of a conv or pool node over `input` (spatial dims only) with `kernel`.
    /// `ceil_mode` rounds the output size up (pools), dropping a last window that would start
    /// in the end padding.
    pub fn new(ctx: &Ctx, input: &[usize], kernel: &[usize], ceil_mode: bool) -> OpResult<Window> {
        let rank = input.len();
        if !(1..=3).contains(&rank) || kernel.len() != rank {
            return Err(unsupported(format!(
                "{rank} spatial dims with a kernel of {} dims (1 to 3 supported)",
                kernel.len()
            )));
        }
        let strides = dims_attr(ctx, "strides", rank, 1)?;
        let dilations = dims_attr(ctx, "dilations", rank, 1)?;
        let auto_pad = ctx.attr_s_or("auto_pad", "NOTSET");
        let mut pad_begin = vec![0usize; rank];
        let mut pad_end = vec![0usize; rank];
        let mut output = vec![0usize; rank];
        for i in 0..rank {
            let span = (kernel[i] - 1) * dilations[i] + 1;
            let (s, x) = (strides[i], input[i]);
            match auto_pad.as_str() {
                "SAME_UPPER" | "SAME_LOWER" => {
                    output[i] = x.div_ceil(s);
                    let total = ((output[i].max(1) - 1) * s + span).saturating_sub(x);
                    let small = total / 2;
                    (pad_begin[i], pad_end[i]) = if auto_pad == "SAME_UPPER" {
                        (small, total - small)
                    } else {
                        (total - small, small)
                    };
                }
                "VALID" | "NOTSET" | "" => {
                    if auto_pad != "VALID"
                        && let Some(p) = ctx.node.attr_ints("pads")
                    {
                        if p.len() != 2 * rank || p.iter().any(|&v| v < 0) {
                            return Err(invalid(format!(
                                "pads = {p:?} must be {} non-negative values",
                                2 * rank
                            )));
                        }
                        pad_begin[i] = p[i] as usize;
                        pad_end[i] = p[i + rank] as usize;
                    }
                    let padded = x + pad_begin[i] + pad_end[i];
                    if padded < span {
                        return Err(invalid(format!(
                            "kernel span {span} exceeds padded input {padded} on spatial dim {i}"
                        )));
                    }
                    output[i] = if ceil_mode {
                        let mut o = (padded - span).div_ceil(s) + 1;
                        if (o - 1) * s >= x + pad_begin[i] {
                            o -= 1;
                        }
                        o
                    } else {
                        (padded - span) / s + 1
                    };
                }
                other => return Err(invalid(format!("auto_pad = {other} is not valid"))),
            }
        }
        Ok(Window {
            rank,
            input: pad3(input, 1),
            kernel: pad3(kernel, 1),
            strides: pad3(&strides, 1),
            dilations: pad3(&dilations, 1),
            pad_begin: pad3(&pad_begin, 0),
            pad_end: pad3(&pad_end, 0),
            output: pad3(&output, 1),
        })
    }

    /// Output spatial dims (only the op's own `rank` dims).
    pub fn output_dims(&self) -> &[usize] {
        &self.output[3 - self.rank..]
    }

    /// Product of the kernel dims.
    pub fn kernel_size(&self) -> usize {
        self.kernel.iter().product()
    }

    /// Product of the input spatial dims.
    pub fn input_size(&self) -> usize {
        self.input.iter().product()
    }

    /// Product of the output spatial dims.
    pub fn output_size(&self) -> usize {
        self.output.iter().product()
    }

    /// The input coordinate read by output `o` at kernel offset `k` on dim `d`, if inside.
    #[inline]
    pub fn source(&self, d: usize, o: usize, k: usize) -> Option<usize> {
        let pos =
            (o * self.strides[d] + k * self.dilations[d]) as isize - self.pad_begin[d] as isize;
        (pos >= 0 && (pos as usize) < self.input[d]).then_some(pos as usize)
    }

    /// The range of outputs `o` on dim `d` whose kernel offset `k` reads inside the input.
    #[inline]
    pub fn valid_outputs(&self, d: usize, k: usize) -> std::ops::Range<usize> {
        let (s, off) = (self.strides[d], k * self.dilations[d]);
        let pb = self.pad_begin[d];
        // o * s + off - pb >= 0  and  o * s + off - pb < input
        let lo = if off >= pb { 0 } else { (pb - off).div_ceil(s) };
        let end = self.input[d] + pb;
        let hi = if end > off {
            (end - off).div_ceil(s)
        } else {
            0
        };
        lo.min(self.output[d])..hi.min(self.output[d]).max(lo.min(self.output[d]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{Node, attr};

    fn window(node: Node, input: &[usize], kernel: &[usize], ceil: bool) -> Window {
        let ctx = Ctx {
            node: &node,
            inputs: &[],
        };
        Window::new(&ctx, input, kernel, ceil).unwrap()
    }

    #[test]
    fn explicit_pads_and_ceil_mode() {
        // 112 -> MaxPool k3 s2 p1: floor((112+2-3)/2)+1 = 56
        let n = Node::new("p", "MaxPool", &[], &[])
            .with_attr(attr::ints("strides", &[2, 2]))
            .with_attr(attr::ints("pads", &[1, 1, 1, 1]));
        assert_eq!(
            window(n.clone(), &[112, 112], &[3, 3], false).output_dims(),
            &[56, 56]
        );
        // 6, k3 s2 no pads: floor 2, ceil 3 (last window starts at 4 < 6)
        let n = Node::new("p", "MaxPool", &[], &[]).with_attr(attr::ints("strides", &[2]));
        assert_eq!(window(n.clone(), &[6], &[3], false).output_dims(), &[2]);
        assert_eq!(window(n.clone(), &[6], &[3], true).output_dims(), &[3]);
        // 5, k2 s2 pad_end 1: ceil gives 3 but the window at 6 starts in the padding -> 3 stays?
        // padded = 6, (6-2)/2 ceil + 1 = 3; (3-1)*2 = 4 < 5 + 0 -> kept.
        let n = n.with_attr(attr::ints("pads", &[0, 1]));
        assert_eq!(window(n, &[5], &[2], true).output_dims(), &[3]);
    }

    #[test]
    fn same_upper_and_lower_split_odd_padding() {
        let n = Node::new("c", "Conv", &[], &[])
            .with_attr(attr::string("auto_pad", "SAME_UPPER"))
            .with_attr(attr::ints("strides", &[2]));
        let w = window(n, &[6], &[4], false);
        // out = 3, total = (3-1)*2 + 4 - 6 = 2 -> 1/1; with k=3: total 1 -> upper puts it at end
        assert_eq!((w.output[2], w.pad_begin[2], w.pad_end[2]), (3, 1, 1));
        let n = Node::new("c", "Conv", &[], &[])
            .with_attr(attr::string("auto_pad", "SAME_LOWER"))
            .with_attr(attr::ints("strides", &[2]));
        let w = window(n, &[6], &[3], false);
        assert_eq!((w.output[2], w.pad_begin[2], w.pad_end[2]), (3, 1, 0));
    }

    #[test]
    fn valid_output_range_matches_source() {
        let n = Node::new("c", "Conv", &[], &[])
            .with_attr(attr::ints("strides", &[2]))
            .with_attr(attr::ints("pads", &[2, 1]));
        let w = window(n, &[7], &[3], false);
        for k in 0..3 {
            let r = w.valid_outputs(2, k);
            for o in 0..w.output[2] {
                assert_eq!(r.contains(&o), w.source(2, o, k).is_some(), "k={k} o={o}");
            }
        }
    }
}
