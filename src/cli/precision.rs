//! `--precision`, shared by detect, bench, profile and eval; `--shader-checks` and `--gemm` of bench and profile.

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::Args;
use sshface::{GemmTier, Precision, ShaderChecks};

/// The values `--precision` accepts, by [`Precision::name`]: a new variant of the library is one entry here.
const PRECISIONS: [Precision; 4] = [
    Precision::F32,
    Precision::F16,
    Precision::F16Coop,
    Precision::Auto,
];

/// Parses one of `values` by `name`; other names are a usage error listing the possible values.
fn by_name<T: Copy + Send + Sync + 'static>(
    values: &'static [T],
    name: fn(T) -> &'static str,
) -> impl TypedValueParser<Value = T> {
    PossibleValuesParser::new(values.iter().map(|&v| name(v))).map(move |s| {
        *values
            .iter()
            .find(|&&v| name(v) == s)
            .expect("PossibleValuesParser only lets listed names through")
    })
}

/// Parses one precision name; unknown names are a usage error listing the possible values.
pub fn parser() -> impl TypedValueParser<Value = Precision> {
    by_name(&PRECISIONS, Precision::name)
}

/// `--precision P` for commands that run one detector.
#[derive(Args, Clone)]
pub struct PrecisionArgs {
    /// Numeric precision: f32; f16 (f16 feature maps and weights, f32 arithmetic); f16-coop (as f16, convolutions
    /// on cooperative matrices); auto: the fastest the adapter supports. The adapter line on stderr names the one
    /// that runs.
    #[arg(long, default_value = "auto", value_parser = parser())]
    pub precision: Precision,
}

/// Parses `on` / `off` for `--shader-checks`; anything else is a usage error listing both.
pub fn checks_parser() -> impl TypedValueParser<Value = ShaderChecks> {
    by_name(&[ShaderChecks::On, ShaderChecks::Off], ShaderChecks::name)
}

/// The values `--gemm` accepts, by [`GemmTier::name`].
const GEMM_TIERS: [GemmTier; 3] = [GemmTier::Auto, GemmTier::Wide, GemmTier::Small];

/// Parses `auto`, `wide` or `small` for `--gemm`; anything else is a usage error listing them.
pub fn gemm_parser() -> impl TypedValueParser<Value = GemmTier> {
    by_name(&GEMM_TIERS, GemmTier::name)
}
