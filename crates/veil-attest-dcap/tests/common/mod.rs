//! The vectors and times shared by the integration tests (see testdata/README.md).
#![allow(dead_code)]

use veil_attest::Endorsement;

pub const SGX_QUOTE: &[u8] = include_bytes!("../../testdata/dcapqvl_sgx_quote.bin");
pub const SGX_COLLATERAL: &[u8] =
    include_bytes!("../../testdata/dcapqvl_sgx_quote.collateral.json");
pub const SGX_T: u64 = 1751624924;

pub const TDX_QUOTE: &[u8] = include_bytes!("../../testdata/dcapqvl_tdx_quote.bin");
pub const TDX_COLLATERAL: &[u8] =
    include_bytes!("../../testdata/dcapqvl_tdx_quote.collateral.json");
pub const TDX_T: u64 = 1751624655;

pub const TDX5_QUOTE: &[u8] = include_bytes!("../../testdata/dcapqvl_tdx_quote_v5_outdated.bin");
pub const TDX5_COLLATERAL: &[u8] =
    include_bytes!("../../testdata/dcapqvl_tdx_quote_v5_outdated.collateral.json");
pub const TDX5_T: u64 = 1772707833;

pub const GOTDX_QUOTE: &[u8] = include_bytes!("../../testdata/gotdx_tdx_quote.bin");
pub const GOTDX_COLLATERAL: &[u8] =
    include_bytes!("../../testdata/gotdx_tdx_quote.collateral.json");
pub const GOTDX_T: u64 = 1687939438;
/// go-tdx-guest's quote is followed by 39 bytes of text; this is where it ends.
pub const GOTDX_QUOTE_LEN: usize = 4935;

pub const OCCLUM_QUOTE: &[u8] = include_bytes!("../../testdata/trustee_occlum_quote.bin");
pub const GRAMINE_QUOTE: &[u8] = include_bytes!("../../testdata/ccc_gramine_ratls_quote.bin");

pub const DAY: u64 = 86_400;

pub fn col(json: &[u8]) -> Vec<Endorsement> {
    vec![Endorsement::DcapCollateral(json.to_vec())]
}
