//! Token budgets of a completion: the settings', shrunk to what a remote slot holds and to what
//! the loaded model's measured speed serves on this machine. Pure.

use std::time::Duration;

use crate::config::Settings;
use crate::models::{ModelInfo, Rates};

/// A new prompt (nothing of it in the cache) should be read within this time: a 7B on two cores
/// (about 18 tokens/s) then gets about 220 tokens of code, which pre-warming reads, template
/// included, while the user pauses for 20 s; a 0.5B there (220 tokens/s) keeps the settings.
pub const PROMPT_TARGET: Duration = Duration::from_secs(12);

/// An answer should take at most this long to generate.
pub const ANSWER_TARGET: Duration = Duration::from_secs(4);

/// The smallest prompt budget: less code than this is too little to complete from.
const MIN_PROMPT_TOKENS: usize = 96;

/// The smallest answer budget: about a line.
const MIN_ANSWER_TOKENS: u32 = 8;

/// Token budgets of a prompt's parts and of the answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budgets {
    pub prefix: usize,
    pub suffix: usize,
    pub extra: usize,
    pub max_tokens: u32,
}

impl Budgets {
    /// The settings' budgets.
    pub fn wanted(settings: &Settings) -> Budgets {
        Budgets {
            prefix: settings.prefix_tokens as usize,
            suffix: settings.suffix_tokens as usize,
            extra: settings.extra_tokens as usize,
            max_tokens: settings.max_tokens,
        }
    }

    /// The budgets for `model`: the settings', fitted to a remote slot when tokens are only
    /// estimated (`counted` false), then to the model's measured speed when
    /// `completion.adaptiveBudgets` is on.
    pub fn for_model(settings: &Settings, model: &ModelInfo, counted: bool) -> Budgets {
        let budgets = Budgets::wanted(settings).fitting_slot(model.context_size, counted);
        match model.rates {
            Some(rates) if settings.adaptive_budgets => budgets.fitting_rates(rates),
            _ => budgets,
        }
    }

    fn prompt_total(&self) -> usize {
        self.prefix + self.suffix + self.extra
    }

    /// The prompt parts shrunk together, in proportion, to `room` tokens in all (never grown).
    fn shrunk_to(self, room: usize) -> Budgets {
        let total = self.prompt_total();
        if total <= room {
            return self;
        }
        let share = |part: usize| part * room / total;
        Budgets { prefix: share(self.prefix), suffix: share(self.suffix), extra: share(self.extra), ..self }
    }

    /// Without the model's tokenizer (a remote server), tokens are only estimated: the parts then
    /// shrink together to fit three quarters of the server's context (what one of its slots
    /// holds) after the answer, so that an estimate that falls short still fits.
    fn fitting_slot(self, context_size: u32, counted: bool) -> Budgets {
        if counted || context_size == 0 {
            return self;
        }
        let room = (context_size as usize * 3 / 4).saturating_sub(self.max_tokens as usize).max(64);
        self.shrunk_to(room)
    }

    /// Shrunk to what `rates` read within [`PROMPT_TARGET`] and generate within
    /// [`ANSWER_TARGET`].
    pub fn fitting_rates(self, rates: Rates) -> Budgets {
        let prompt = PROMPT_TARGET.as_micros() / u128::from(rates.prompt_us_per_token.max(1));
        let answer = ANSWER_TARGET.as_micros() / u128::from(rates.generation_us_per_token.max(1));
        let room = usize::try_from(prompt).unwrap_or(usize::MAX).max(MIN_PROMPT_TOKENS);
        let answer = u32::try_from(answer).unwrap_or(u32::MAX).max(MIN_ANSWER_TOKENS);
        Budgets { max_tokens: self.max_tokens.min(answer), ..self.shrunk_to(room) }
    }

    /// The budgets with the part of the context budget that `used` leaves (too few definitions
    /// and recent chunks to fill it: a single file, a new project) given to the current file's
    /// window, split between its prefix and suffix in their proportion. The prompt's total stays
    /// the same; spare amounts under [`MIN_SPARE_TOKENS`] are not worth a second cut.
    pub fn with_unused_extra(self, used: usize) -> Budgets {
        let spare = self.extra.saturating_sub(used);
        let window = self.prefix + self.suffix;
        if spare < MIN_SPARE_TOKENS || window == 0 {
            return self;
        }
        let to_suffix = spare * self.suffix / window;
        Budgets { prefix: self.prefix + spare - to_suffix, suffix: self.suffix + to_suffix, extra: used, ..self }
    }
}

/// Unused context budget below this stays unused (see [`Budgets::with_unused_extra`]).
const MIN_SPARE_TOKENS: usize = 32;

#[cfg(test)]
mod tests {
    use super::*;

    fn rates(prompt_per_second: u32, generation_per_second: u32) -> Rates {
        Rates {
            prompt_us_per_token: 1_000_000 / prompt_per_second,
            generation_us_per_token: 1_000_000 / generation_per_second,
        }
    }

    #[test]
    fn estimated_prompts_shrink_to_fit_a_remote_slot() {
        let settings = Settings::default();
        let wanted = Budgets::wanted(&settings);
        assert_eq!(wanted.fitting_slot(2048, true), wanted, "counted with the tokenizer");
        assert_eq!(wanted.fitting_slot(0, false), wanted, "no size known");
        assert_eq!(wanted.fitting_slot(32768, false), wanted, "room enough");
        let small = wanted.fitting_slot(2048, false);
        assert!(small.prompt_total() + settings.max_tokens as usize <= 1536, "{small:?}");
        assert!(small.prefix > small.extra && small.extra > small.suffix, "in proportion: {small:?}");
    }

    #[test]
    fn context_budget_that_nothing_fills_goes_to_the_window() {
        let budgets = Budgets { prefix: 600, suffix: 200, extra: 400, max_tokens: 64 };
        // (context tokens used) -> (prefix, suffix, extra)
        let cases = [
            (400, (600, 200, 400)), // full
            (380, (600, 200, 400)), // too little left to matter
            (0, (900, 300, 0)),     // nothing to show: all of it, 3:1 as prefix and suffix
            (200, (750, 250, 200)),
            (500, (600, 200, 400)), // over (a chunk's tags): as it was
        ];
        for (used, (prefix, suffix, extra)) in cases {
            let got = budgets.with_unused_extra(used);
            assert_eq!((got.prefix, got.suffix, got.extra), (prefix, suffix, extra), "{used} used");
            assert_eq!(got.max_tokens, 64);
            assert!(got.prompt_total() <= budgets.prompt_total(), "never more in all: {got:?}");
        }
        let no_window = Budgets { prefix: 0, suffix: 0, extra: 100, max_tokens: 8 };
        assert_eq!(no_window.with_unused_extra(0), no_window);
    }

    #[test]
    fn budgets_follow_the_measured_speed() {
        let wanted = Budgets::wanted(&Settings::default());
        // (prompt tokens/s, generated tokens/s) -> (prompt budget at most, answer budget)
        let cases = [
            // A GPU, and a 0.5B on two cores: the settings as they are.
            ((5000, 200), (wanted.prompt_total(), wanted.max_tokens)),
            ((221, 59), (wanted.prompt_total(), wanted.max_tokens)),
            // A 7B on two cores: what 12 s read and 4 s write.
            ((18, 9), (216, 36)),
            // Slower still: the floors.
            ((2, 1), (MIN_PROMPT_TOKENS, MIN_ANSWER_TOKENS)),
        ];
        for ((prompt, generation), (total, answer)) in cases {
            let fitted = wanted.fitting_rates(rates(prompt, generation));
            assert!(fitted.prompt_total() <= total && fitted.prompt_total() + 3 >= total, "{prompt} t/s: {fitted:?}");
            assert_eq!(fitted.max_tokens, answer, "{generation} t/s: {fitted:?}");
            assert!(fitted.prefix >= fitted.extra && fitted.extra >= fitted.suffix, "in proportion: {fitted:?}");
        }
        let mut settings = Settings::default();
        let model = ModelInfo { rates: Some(rates(18, 9)), ..ModelInfo::default() };
        assert!(Budgets::for_model(&settings, &model, true).prompt_total() <= 216, "on by default");
        settings.adaptive_budgets = false;
        assert_eq!(Budgets::for_model(&settings, &model, true), wanted, "off: the settings as they are");
        settings.max_tokens = 8;
        settings.adaptive_budgets = true;
        assert_eq!(Budgets::for_model(&settings, &model, true).max_tokens, 8, "never more than the setting");
    }
}
