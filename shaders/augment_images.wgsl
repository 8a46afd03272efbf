// Batched augmentation of u8 images held on the device: a crop box (a shift with zero fill, or a
// random resized crop) resampled bilinearly to the image's size, optional left-right mirror,
// scaling to [0, 1] and per-channel normalisation. Pixels are packed four to a u32,
// little-endian, images row-major one after another with the channels of a pixel side by side
// (N x H x W x C); the output is channels first (B x C x H x W). params holds, per sample, the
// image index, the box's top, left, height and width, and a flip flag. Coordinates and weights
// are integers in 1/256 pixel (the host's arithmetic in core/src/data/augment.rs, to the bit).
// One thread per output value.

@group(0) @binding(0) var<storage, read_write> pixels: array<u32>;
@group(0) @binding(1) var<storage, read_write> params: array<i32>;
@group(0) @binding(2) var<storage, read_write> output: array<f32>;
// batch, h, w, channels, scale / 256^2, mean[3], inv_std[3] (floats as their bits).
@group(0) @binding(3) var<storage, read_write> info: array<u32>;

const WORKGROUP: u32 = 256u;
const FIELDS: u32 = 6u;
const SUBPIXEL: i32 = 256;
const OFFSET: i32 = 1048576; // 4096 pixels, so division rounds down for negative coordinates

// Where output pixel o of out_len samples the box [start, start + len), in 1/256 pixel.
fn coordinate(o: i32, start: i32, len: i32, out_len: i32) -> i32 {
    let at = start * SUBPIXEL + ((2 * o + 1) * len * (SUBPIXEL / 2)) / out_len - SUBPIXEL / 2;
    return clamp(at, start * SUBPIXEL, (start + len - 1) * SUBPIXEL);
}

fn pixel(image: u32, y: i32, x: i32, c: u32, h: u32, w: u32, channels: u32) -> i32 {
    if y < 0 || y >= i32(h) || x < 0 || x >= i32(w) {
        return 0;
    }
    let src = ((image * h + u32(y)) * w + u32(x)) * channels + c;
    return i32((pixels[src / 4u] >> ((src % 4u) * 8u)) & 0xFFu);
}

@compute @workgroup_size(256, 1, 1)
fn main(
    @builtin(global_invocation_id) global: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let id = global.x + global.y * groups.x * WORKGROUP;
    let batch = info[0];
    let h = info[1];
    let w = info[2];
    let channels = info[3];
    let scale = bitcast<f32>(info[4]);
    let plane = h * w;
    if id >= batch * channels * plane {
        return;
    }
    let sample = id / (channels * plane);
    let c = (id / plane) % channels;
    let y = i32((id % plane) / w);
    var x = i32(id % w);
    let mean = bitcast<f32>(info[5u + c]);
    let inv_std = bitcast<f32>(info[8u + c]);
    let p = sample * FIELDS;
    let image = u32(params[p]);
    if params[p + 5u] != 0 {
        x = i32(w) - 1 - x;
    }
    let sy = coordinate(y, params[p + 1u], params[p + 3u], i32(h)) + OFFSET;
    let sx = coordinate(x, params[p + 2u], params[p + 4u], i32(w)) + OFFSET;
    let y0 = sy / SUBPIXEL - OFFSET / SUBPIXEL;
    let x0 = sx / SUBPIXEL - OFFSET / SUBPIXEL;
    let fy = sy % SUBPIXEL;
    let fx = sx % SUBPIXEL;
    let top = pixel(image, y0, x0, c, h, w, channels) * (SUBPIXEL - fx)
        + pixel(image, y0, x0 + 1, c, h, w, channels) * fx;
    let bottom = pixel(image, y0 + 1, x0, c, h, w, channels) * (SUBPIXEL - fx)
        + pixel(image, y0 + 1, x0 + 1, c, h, w, channels) * fx;
    let value = f32(top * (SUBPIXEL - fy) + bottom * fy) * scale;
    output[id] = (value - mean) * inv_std;
}
