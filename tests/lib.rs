//! What weft's cross-crate tests share with the fuzz targets in `fuzz/`.

pub mod fuzz;
