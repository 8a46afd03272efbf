//! Reading tensors back to the host. Head tuning and the spectrum await their reads, so the
//! same code runs on WebGPU in a browser, where a read can only be awaited. Everyone else calls
//! their blocking forms, which wrap the async ones in [`blocking`]: on native devices it waits,
//! and on the CPU backend in WASM every read is ready at once.

use std::future::Future;

use burn::tensor::kind::Basic;
use burn::tensor::{Element, Int, Tensor, try_read_sync};

use crate::error::{NmlError, Result};

/// The values of a tensor, converted to `E`.
pub async fn values<E: Element, const D: usize, K: Basic>(x: Tensor<D, K>) -> Result<Vec<E>> {
    let dims = x.dims();
    x.into_data_async()
        .await
        .map_err(|e| {
            NmlError::Backend(format!("reading a {dims:?} tensor back from the device failed: {e}"))
        })?
        // Takes the buffer over where the backend hands back sole ownership, instead of copying.
        .try_into_vec_as::<E>()
        .map_err(|e| NmlError::Backend(format!("reading a tensor back: {e:?}")))
}

/// The values of a float tensor, as f32.
pub async fn floats<const D: usize>(x: Tensor<D>) -> Result<Vec<f32>> {
    values(x).await
}

/// The values of an integer tensor, as i64.
pub async fn ints<const D: usize>(x: Tensor<D, Int>) -> Result<Vec<i64>> {
    values(x).await
}

/// Runs async work to its end from synchronous code.
pub fn blocking<T>(work: impl Future<Output = Result<T>>) -> Result<T> {
    try_read_sync(work).unwrap_or_else(|| {
        Err(NmlError::Backend(
            "this device can only be read asynchronously here (WebGPU in a browser): call the async form".into(),
        ))
    })
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, TensorData};

    use super::*;

    #[test]
    fn reads_what_was_written() {
        let device = Device::flex();
        let x =
            Tensor::<2>::from_data(TensorData::new(vec![1.5f32, -2.0, 3.25, 0.0], [2, 2]), &device);
        assert_eq!(blocking(floats(x.clone())).unwrap(), vec![1.5, -2.0, 3.25, 0.0]);
        assert_eq!(blocking(ints(x.argmax(1).flatten::<1>(0, 1))).unwrap(), vec![0, 0]);
    }
}
