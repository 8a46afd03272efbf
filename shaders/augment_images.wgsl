// Batched augmentation of u8 images held on the device: random crop with zero padding (a shift
// of the image by (dy, dx)), optional left-right mirror, scaling to [0, 1] and per-channel
// normalisation. Pixels are packed four to a u32, little-endian, images row-major one after
// another with the channels of a pixel side by side (N x H x W x C); the output is channels
// first (B x C x H x W). params holds, per sample, the image index, dy, dx and a flip flag.
// One thread per output value.

@group(0) @binding(0) var<storage, read_write> pixels: array<u32>;
@group(0) @binding(1) var<storage, read_write> params: array<i32>;
@group(0) @binding(2) var<storage, read_write> output: array<f32>;
// batch, h, w, channels, scale, mean[3], inv_std[3] (floats as their bits).
@group(0) @binding(3) var<storage, read_write> info: array<u32>;

const WORKGROUP: u32 = 256u;

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
    let y = (id % plane) / w;
    let x = id % w;
    let mean = bitcast<f32>(info[5u + c]);
    let inv_std = bitcast<f32>(info[8u + c]);
    let image = u32(params[sample * 4u]);
    let dy = params[sample * 4u + 1u];
    let dx = params[sample * 4u + 2u];
    var sx = i32(x);
    if params[sample * 4u + 3u] != 0 {
        sx = i32(w) - 1 - sx;
    }
    sx += dx;
    let sy = i32(y) + dy;
    var value = 0.0;
    if sy >= 0 && sy < i32(h) && sx >= 0 && sx < i32(w) {
        let src = ((image * h + u32(sy)) * w + u32(sx)) * channels + c;
        let byte = (pixels[src / 4u] >> ((src % 4u) * 8u)) & 0xFFu;
        value = f32(byte) * scale;
    }
    output[id] = (value - mean) * inv_std;
}
