// Gram matrix G = V^T V of a preprocessed feature matrix, without materialising V:
//   v_ij = x_ij * inv_row_scale_i - row_offset_i - col_offset_j
// covers nml's three spectrum modes (paper: row L2-normalised then row-centred; centered:
// column-centred; raw). x is N x D row-major; G is D x D.
//
// Each workgroup (8 x 8 threads) computes one 64 x 64 tile of G, each thread an 8 x 8 block,
// streaming DEPTH rows of x at a time through workgroup memory. Only tiles on or above the
// diagonal run; each writes its block and the mirror image. Accuracy: products are summed in
// plain f32 over BLOCK_STEPS * DEPTH rows, and those block sums are added with Kahan
// compensation, so the error grows with the block length, not with N.

@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> inv_row_scale: array<f32>;
@group(0) @binding(2) var<storage, read_write> row_offset: array<f32>;
@group(0) @binding(3) var<storage, read_write> col_offset: array<f32>;
@group(0) @binding(4) var<storage, read_write> gram: array<f32>;
@group(0) @binding(5) var<storage, read_write> info: array<u32>;

const TILE: u32 = 64u;
const DEPTH: u32 = 32u;
const BLOCK_STEPS: u32 = {{ block_steps }}u;

// DEPTH rows x TILE columns each, four columns to an element.
var<workgroup> a_tile: array<vec4<f32>, 512>;
var<workgroup> b_tile: array<vec4<f32>, 512>;
var<workgroup> dims_shared: vec2<u32>;

struct Compensated {
    sum: vec4<f32>,
    carry: vec4<f32>,
}

fn kahan_add(acc: Compensated, value: vec4<f32>) -> Compensated {
    let y = value - acc.carry;
    let t = acc.sum + y;
    return Compensated(t, (t - acc.sum) - y);
}

// Four consecutive preprocessed elements of one row, zero outside the matrix.
fn load4(row: u32, col: u32, n: u32, d: u32) -> vec4<f32> {
    var v = vec4<f32>(0.0);
    if row >= n {
        return v;
    }
    let s = inv_row_scale[row];
    let o = row_offset[row];
    for (var c = 0u; c < 4u; c++) {
        if col + c < d {
            v[c] = x[row * d + col + c] * s - o - col_offset[col + c];
        }
    }
    return v;
}

@compute @workgroup_size(8, 8, 1)
fn main(
    @builtin(workgroup_id) group: vec3<u32>,
    @builtin(local_invocation_id) local: vec3<u32>,
    @builtin(local_invocation_index) flat: u32,
) {
    // Tiles below the diagonal are the mirror of tiles above it.
    if group.x > group.y {
        return;
    }
    if flat == 0u {
        dims_shared = vec2<u32>(info[0], info[1]);
    }
    // Loop bounds must be uniform across the workgroup for its barriers.
    let dims = workgroupUniformLoad(&dims_shared);
    let n = dims.x;
    let d = dims.y;
    let col_a = group.x * TILE;
    let col_b = group.y * TILE;

    // block[i * 2 + h]: row i of this thread's 8 x 8 block, columns 4h..4h+3.
    var block: array<vec4<f32>, 16>;
    var total: array<Compensated, 16>;
    for (var i = 0u; i < 16u; i++) {
        block[i] = vec4<f32>(0.0);
        total[i] = Compensated(vec4<f32>(0.0), vec4<f32>(0.0));
    }
    var steps = 0u;

    for (var r0 = 0u; r0 < n; r0 += DEPTH) {
        for (var e = 0u; e < 8u; e++) {
            let i = flat + e * 64u;
            let row = r0 + i / 16u;
            let col = (i % 16u) * 4u;
            a_tile[i] = load4(row, col_a + col, n, d);
            b_tile[i] = load4(row, col_b + col, n, d);
        }
        workgroupBarrier();
        for (var k = 0u; k < DEPTH; k++) {
            let a0 = a_tile[k * 16u + local.y * 2u];
            let a1 = a_tile[k * 16u + local.y * 2u + 1u];
            let b0 = b_tile[k * 16u + local.x * 2u];
            let b1 = b_tile[k * 16u + local.x * 2u + 1u];
            let a = array<f32, 8>(a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w);
            for (var i = 0u; i < 8u; i++) {
                block[i * 2u] += a[i] * b0;
                block[i * 2u + 1u] += a[i] * b1;
            }
        }
        workgroupBarrier();
        steps += 1u;
        if steps == BLOCK_STEPS {
            for (var i = 0u; i < 16u; i++) {
                total[i] = kahan_add(total[i], block[i]);
                block[i] = vec4<f32>(0.0);
            }
            steps = 0u;
        }
    }
    for (var i = 0u; i < 16u; i++) {
        total[i] = kahan_add(total[i], block[i]);
    }

    for (var i = 0u; i < 8u; i++) {
        let r = col_a + local.y * 8u + i;
        if r >= d {
            break;
        }
        for (var j = 0u; j < 8u; j++) {
            let c = col_b + local.x * 8u + j;
            if c < d {
                let value = total[i * 2u + j / 4u].sum[j % 4u];
                gram[r * d + c] = value;
                gram[c * d + r] = value;
            }
        }
    }
}
