//! `--precision`, shared by detect, bench, profile and eval; `--shader-checks` of bench and profile.

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::Args;
use sshface::{Precision, ShaderChecks};

/// The values `--precision` accepts, by [`Precision::name`]: a new variant of the library is one entry here.
const PRECISIONS: [Precision; 4] = [
    Precision::F32,
    Precision::F16,
    Precision::F16Coop,
    Precision::Auto,
];

/// Parses one precision name; unknown names are a usage error listing the possible values.
pub fn parser() -> impl TypedValueParser<Value = Precision> {
    PossibleValuesParser::new(PRECISIONS.map(Precision::name)).map(|s| {
        *PRECISIONS
            .iter()
            .find(|p| p.name() == s)
            .expect("PossibleValuesParser only lets listed names through")
    })
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
    PossibleValuesParser::new(["on", "off"]).map(|s| {
        s.parse::<ShaderChecks>()
            .expect("PossibleValuesParser only lets on and off through")
    })
}
