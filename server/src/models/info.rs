//! What a loaded model is: facts from its GGUF metadata and vocabulary that prompts and status use.

/// What the loaded model is, from its GGUF metadata and vocabulary.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModelInfo {
    /// A one-line description for status displays.
    pub description: String,
    /// `general.architecture`, such as `llama` or `qwen2`.
    pub architecture: String,
    /// `general.name`, if present.
    pub name: String,
    /// The vocabulary has FIM prefix, suffix and middle tokens.
    pub has_fim_tokens: bool,
    /// The vocabulary has repo-level tokens (`<|repo_name|>`, `<|file_sep|>`).
    pub has_repo_tokens: bool,
    /// The GGUF carries a chat template.
    pub has_chat_template: bool,
    pub context_size: u32,
    pub threads: u32,
    /// How fast the model runs here, measured when it was loaded; `None` where unknown (a
    /// remote server).
    pub rates: Option<Rates>,
}

/// Measured speed of a loaded model on this machine: time per prompt token (in a batch) and per
/// generated token.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rates {
    pub prompt_us_per_token: u32,
    pub generation_us_per_token: u32,
}

impl Rates {
    /// Prompt tokens per second.
    pub fn prompt_per_second(&self) -> f64 {
        1e6 / f64::from(self.prompt_us_per_token.max(1))
    }

    /// Generated tokens per second.
    pub fn generation_per_second(&self) -> f64 {
        1e6 / f64::from(self.generation_us_per_token.max(1))
    }

    /// The rates after a job that ran at `prompt_us` and `generation_us` per token (each absent
    /// when the job did too little of it to tell): each moves halfway toward a faster job and a
    /// quarter of the way toward a slower one, so that a measurement on a busy moment at load
    /// does not set the budgets for good, and one slow job does not shrink them much.
    pub fn refined(self, prompt_us: Option<u32>, generation_us: Option<u32>) -> Rates {
        let toward = |old: u32, new: Option<u32>| match new {
            Some(new) if new < old => ((u64::from(old) + u64::from(new.max(1))) / 2).max(1) as u32,
            Some(new) => ((u64::from(old) * 3 + u64::from(new)) / 4) as u32,
            None => old,
        };
        Rates {
            prompt_us_per_token: toward(self.prompt_us_per_token, prompt_us),
            generation_us_per_token: toward(self.generation_us_per_token, generation_us),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Rates;

    #[test]
    fn rates_move_a_quarter_of_the_way_toward_what_jobs_show() {
        let calibrated = Rates { prompt_us_per_token: 8000, generation_us_per_token: 40_000 };
        let cases = [
            // A faster prompt (halfway) and no generation to tell from.
            (Some(4000), None, (6000, 40_000)),
            // A slower generation: a quarter of the way.
            (Some(4000), Some(80_000), (6000, 50_000)),
            // Nothing to tell from: unchanged.
            (None, None, (8000, 40_000)),
            // A zero never makes a rate of zero.
            (Some(0), Some(0), (4000, 20_000)),
        ];
        for (prompt, generation, (p, g)) in cases {
            let refined = calibrated.refined(prompt, generation);
            assert_eq!(
                (refined.prompt_us_per_token, refined.generation_us_per_token),
                (p, g),
                "{prompt:?} {generation:?}"
            );
        }
        // A calibration on a busy moment (20 and 0.4 t/s for a model that reads 220 and writes
        // 59) recovers within a dozen jobs.
        let mut rates = Rates { prompt_us_per_token: 50_000, generation_us_per_token: 2_500_000 };
        for _ in 0..12 {
            rates = rates.refined(Some(4500), Some(17_000));
        }
        assert!(rates.prompt_per_second() > 150.0 && rates.generation_per_second() > 20.0, "{rates:?}");
    }
}
